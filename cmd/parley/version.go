package main

import (
	"fmt"
	"runtime/debug"
)

// versionLine is parleyVersion with the commit the binary was built from
// (recorded by go build from the git checkout), "+dirty" when the
// checkout had uncommitted changes, and the Go version.
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "parley " + parleyVersion
	}
	return versionFrom(info)
}

func versionFrom(info *debug.BuildInfo) string {
	var rev, when, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return fmt.Sprintf("parley %s (commit unknown, %s)", parleyVersion, info.GoVersion)
	}
	return fmt.Sprintf("parley %s (commit %s%s, %s, %s)", parleyVersion, rev, dirty, when, info.GoVersion)
}
