package admin

// RouteTable is the route table as {method, path under Prefix} pairs, for
// TestRouteTable.
func RouteTable() [][2]string {
	out := make([][2]string, len(routes))
	for i, rt := range routes {
		out[i] = [2]string{rt.method, rt.path}
	}
	return out
}
