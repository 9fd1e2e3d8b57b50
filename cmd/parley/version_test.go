package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionNamesTheCommit(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-03T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	if got := versionFrom(info); !strings.Contains(got, "commit 0123abcd+dirty") || !strings.HasPrefix(got, "parley "+parleyVersion) {
		t.Errorf("versionFrom = %q", got)
	}
	if got := versionFrom(&debug.BuildInfo{GoVersion: "go1.26"}); !strings.Contains(got, "commit unknown") {
		t.Errorf("without VCS information: %q", got)
	}
}
