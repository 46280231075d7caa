// Package dist holds what turns meshd into an installable system service:
// the Debian package's unit file, maintainer scripts, lintian overrides and
// copyright (debian/), the man pages (man/; meshd.8 gets every key of
// docs/config.md when scripts/package builds it) and the commented example
// node file installed as /etc/meshd/meshd.yaml.example. There is no Go code
// here, only the test that builds the package with scripts/package,
// inspects it, installs it, runs the packaged node under a notify socket
// and purges it again.
package dist
