package extern

// The packaging tools scripts/package and its test (dist/) drive; scripts/install-deps
// installs them (install_packaging_tools).

// FindDpkgDeb returns dpkg-deb (package dpkg), which builds and lists .deb files.
func FindDpkgDeb() (string, error) { return findProgram("dpkg-deb", "/usr/bin/dpkg-deb") }

// FindDpkg returns dpkg (package dpkg), which installs and purges packages.
func FindDpkg() (string, error) { return findProgram("dpkg", "/usr/bin/dpkg") }

// FindLintian returns Debian's package checker (package lintian).
func FindLintian() (string, error) { return findProgram("lintian", "/usr/bin/lintian") }

// FindSystemdAnalyze returns systemd-analyze (package systemd), whose verify command checks a
// unit file without a running systemd.
func FindSystemdAnalyze() (string, error) {
	return findProgram("systemd-analyze", "/usr/bin/systemd-analyze")
}
