package mam

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"parley/internal/jid"
	"parley/internal/seal"
	"parley/internal/storage"
	"parley/internal/vault"
)

// The archive seals each message for its owner (package vault): under
// their data key while it is held, else to their mail-drop key, so the
// server writes what arrives while they are away without being able to
// read it back. The other party's JID is sealed with the message; the row
// keeps only blind indexes of its full and bare JID (HMAC under a server
// key), which the with filter matches, so no JID and no resource is in
// clear. Accounts without keys yet (never logged in since sealing began)
// get the server-key format of before; those rows and mail-drop rows are
// marked and sealed again under the data key after the owner logs in.

// blindPurpose is the blind index domain of archive peers.
const blindPurpose = "archive with"

// indexLen is what the archive keeps of a blind index: 128 bits tell
// peers apart as well as 256 would here, and every row and index entry
// carries two of them.
const indexLen = 16

// sealedAD binds a vault-sealed row to its id, direction and stamp (the
// vault binds the owner; the peer is inside).
func sealedAD(am storage.ArchiveMessage) []byte {
	dir := "in"
	if am.Outgoing {
		dir = "out"
	}
	return seal.AD(NS, "sealed", am.ID, dir, strconv.FormatInt(am.Stamp.UnixMicro(), 10))
}

// envelope packs the peer's JID with the stanza, each with its length,
// as seal.AD encodes two fields (without converting the stanza).
func envelope(with string, stanza []byte) []byte {
	b := make([]byte, 0, 8+len(with)+len(stanza))
	b = binary.BigEndian.AppendUint32(b, uint32(len(with)))
	b = append(b, with...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(stanza)))
	return append(b, stanza...)
}

func unpackEnvelope(b []byte) (with string, stanza []byte, err error) {
	field := func() ([]byte, error) {
		if len(b) < 4 {
			return nil, seal.ErrTampered
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			return nil, seal.ErrTampered
		}
		f := b[4 : 4+n]
		b = b[4+n:]
		return f, nil
	}
	w, err := field()
	if err != nil {
		return "", nil, err
	}
	s, err := field()
	if err != nil || len(b) != 0 {
		return "", nil, seal.ErrTampered
	}
	return string(w), s, nil
}

// sealEntry fills am's Data, With, indexes and Reseal mark for a message
// with peer with. am's ID, Stamp (final, rounded) and Outgoing are set.
func (m *Module) sealEntry(ctx context.Context, owner jid.JID, am storage.ArchiveMessage, with string, plain []byte) storage.ArchiveMessage {
	blob, err := m.vault.Seal(ctx, owner.String(), envelope(with, plain), sealedAD(am))
	if err == nil {
		am.With = ""
		am.WithIndex = m.withIndex(with)
		am.WithBareIndex = m.withIndex(storage.BareOf(with))
		am.Data = blob
		am.Reseal = vault.IsMailDrop(blob)
		return am
	}
	if !errors.Is(err, vault.ErrNoKey) {
		// The public key could not be read: the message is kept under
		// the server key rather than lost, and sealed at the next login.
		m.fails.Report("reading the owner's key; archiving under the server key", err)
	}
	am.With, am.WithIndex, am.WithBareIndex = with, nil, nil
	am.Data = m.seal(owner, am, plain)
	am.Reseal = true
	return am
}

// openEntry returns a row's peer and plain stanza: seal.ErrWrongKey or
// seal.ErrTampered when it fails, vault.ErrLocked when it needs the
// owner's key and that is not held.
func (m *Module) openEntry(ctx context.Context, owner jid.JID, am storage.ArchiveMessage) (with string, plain []byte, err error) {
	if !vault.IsVault(am.Data) {
		plain, err = m.open(owner, am)
		return am.With, plain, err
	}
	env, err := m.vault.Open(ctx, owner.String(), am.Data, sealedAD(am))
	if err != nil {
		return "", nil, err
	}
	return unpackEnvelope(env)
}

// withIndex is the blind index a with filter matches sealed rows by.
func (m *Module) withIndex(with string) []byte {
	if with == "" {
		return nil
	}
	return m.vault.Blind(blindPurpose, with)[:indexLen]
}

// Resealing bounds: one login reseals at most resealRounds batches.
const (
	resealBatch  = 200
	resealRounds = 50
)

// reseal runs after owner's key became held: rows marked for it (under
// the server key, or to the mail-drop) are sealed again under the data
// key, a batch at a time, oldest first.
func (m *Module) reseal(ctx context.Context, owner string) {
	o, err := jid.Parse(owner)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// Rows still in the write-behind buffer are left for the next
	// login: waiting for a flush at every login costs more than they are.
	for range resealRounds {
		rows, err := m.archive.PendingReseal(ctx, owner, resealBatch)
		if err != nil {
			m.host.Logger().Warn("mam: listing messages to reseal", "err", err)
			return
		}
		var done []storage.ArchiveMessage
		for _, am := range rows {
			with, plain, err := m.openEntry(ctx, o, am)
			if err != nil {
				continue // withheld at query time, and reported there
			}
			re := m.sealEntry(ctx, o, am, with, plain)
			clear(plain)
			if re.Reseal {
				return // locked again meanwhile: the next login goes on
			}
			done = append(done, re)
		}
		if len(done) == 0 {
			return // nothing left, or only rows that do not open
		}
		if err := m.archive.Reseal(ctx, owner, done); err != nil {
			if !errors.Is(err, context.Canceled) {
				m.host.Logger().Warn("mam: resealing messages", "err", err)
			}
			return
		}
		if len(rows) < resealBatch {
			return
		}
	}
}
