package caddymodule

import "os"

func mkdirPrivate(dir string) error { return os.MkdirAll(dir, 0o700) }
