package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// takeProfiles drives (a)'s closed loop (or (s)'s, with -profile-streams) at each proxy in turn while taking a
// CPU profile from Caddy's admin endpoint (/debug/pprof/profile), and diffs
// the cumulative allocation profile (/debug/pprof/allocs) from before to
// after. It writes the profiles and `go tool pprof -top` of each to outDir
// and returns a markdown note with the top entries.
func takeProfiles(cfg *config, caddyBin string, ts []*target, outDir, stamp string) string {
	secs := int(cfg.profile.Round(time.Second).Seconds())
	if secs < 1 {
		secs = 1
	}
	var note strings.Builder
	load := "(a)"
	if cfg.profileStreams {
		load = "(s)"
	}
	fmt.Fprintf(&note, "Profiles under %s's load (%d connections, %ds each), written to %s:\n", load, cfg.conns, secs, outDir)
	for _, t := range ts {
		base := filepath.Join(outDir, stamp+"-"+t.name)
		logf("profiling %s for %ds", t.name, secs)
		if err := fetch("http://"+t.admin+"/debug/pprof/allocs", base+"-allocs-before.pprof", 30*time.Second); err != nil {
			logf("  %v", err)
			continue
		}
		begin := time.Now().Add(500 * time.Millisecond)
		end := begin.Add(time.Duration(secs)*time.Second + time.Second)
		done := make(chan *closedResult, 1)
		go func() {
			if cfg.profileStreams {
				done <- closedStreams(t.addr, t.stream, cfg.conns, begin, end)
			} else {
				done <- closedLoop(t.addr, t.plain, cfg.conns, begin, end)
			}
		}()
		sleepUntil(begin)
		cpuErr := fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs), base+"-cpu.pprof", time.Duration(secs+30)*time.Second)
		r := <-done
		allocErr := fetch("http://"+t.admin+"/debug/pprof/allocs", base+"-allocs-after.pprof", 30*time.Second)
		logf("  %s: %.0f req/s while profiling", t.name, float64(len(r.lat))/float64(secs+1))
		var text strings.Builder
		if cpuErr == nil {
			out := pprofTop(caddyBin, "-nodecount=40", base+"-cpu.pprof")
			fmt.Fprintf(&text, "== CPU, %s\n%s\n", t.name, out)
			out = pprofTop(caddyBin, "-cum", "-nodecount=40", base+"-cpu.pprof")
			fmt.Fprintf(&text, "== CPU by cumulative time, %s\n%s\n", t.name, out)
		}
		if allocErr == nil {
			out := pprofTop(caddyBin, "-sample_index=alloc_space", "-nodecount=30", "-diff_base", base+"-allocs-before.pprof", base+"-allocs-after.pprof")
			fmt.Fprintf(&text, "== bytes allocated during the profile, %s\n%s\n", t.name, out)
			out = pprofTop(caddyBin, "-sample_index=alloc_objects", "-nodecount=30", "-diff_base", base+"-allocs-before.pprof", base+"-allocs-after.pprof")
			fmt.Fprintf(&text, "== objects allocated during the profile, %s\n%s\n", t.name, out)
		}
		os.WriteFile(base+"-top.txt", []byte(text.String()), 0o644)
		fmt.Fprintf(&note, "- %s: %s-cpu.pprof, %s-allocs-{before,after}.pprof, `go tool pprof -top` in %s-top.txt\n",
			t.name, filepath.Base(base), filepath.Base(base), filepath.Base(base))
		if cpuErr == nil {
			top := pprofTop(caddyBin, "-cum", "-nodecount=25", "-show="+profileShow, base+"-cpu.pprof")
			fmt.Fprintf(&note, "\n```\n%s: CPU by cumulative time (only %s)\n%s```\n\n", t.name, profileShow, firstRows(top, 25))
		}
	}
	return note.String()
}

func fetch(url, path string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func pprofTop(bin string, args ...string) string {
	all := append([]string{"tool", "pprof", "-top"}, args[:len(args)-1]...)
	all = append(all, bin, args[len(args)-1])
	out, err := exec.Command("go", all...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	return string(out)
}

// profileShow selects the frames of the summary: the gateway, Caddy's
// reverse proxy, the server, the request log, the garbage collector.
const profileShow = `agentrouter|reverseproxy|caddyhttp\.\(\*Server\)\.ServeHTTP|net/http\.\(\*conn\)\.serve$|gcBgMarkWorker|mallocgc$`

// firstRows keeps pprof's duration line, its column header and the first n
// rows.
func firstRows(top string, n int) string {
	lines := strings.Split(top, "\n")
	var out []string
	for i, l := range lines {
		if strings.HasPrefix(l, "Duration:") {
			out = append(out, l)
		}
		if strings.Contains(l, "flat%") {
			end := min(len(lines), i+1+n)
			out = append(out, lines[i:end]...)
			return strings.Join(out, "\n") + "\n"
		}
	}
	return top
}
