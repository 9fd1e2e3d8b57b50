package modtest

import (
	"testing"

	"parley/internal/storage"
	"parley/internal/storage/storagetest"
)

// TestArchiveConformance holds the fake to the drivers' contract, so module
// tests that pass against it mean something for the real stores.
func TestArchiveConformance(t *testing.T) {
	storagetest.RunArchive(t, func(t *testing.T) storage.Store { return NewStore() })
}

// TestMUCConformance holds the fake multi-user chat repository to the
// drivers' contract.
func TestMUCConformance(t *testing.T) {
	storagetest.RunMUC(t, func(t *testing.T) storage.Store { return NewStore() })
}
