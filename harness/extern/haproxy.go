package extern

// FindHAProxy returns the path of Debian's haproxy (package haproxy). Tests
// run it in the foreground (-db) from a temporary config, never as a
// service.
func FindHAProxy() (string, error) { return findProgram("haproxy", "/usr/sbin/haproxy") }
