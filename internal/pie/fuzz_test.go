package pie

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: any input gives users, invalid users or an error, never a
// panic or a hang; what is read can be written and read back. The rooms
// reader gets the same inputs.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.xml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if rooms, err := ReadRooms(data); err == nil {
			var buf bytes.Buffer
			if err := WriteRooms(&buf, rooms); err != nil {
				t.Fatalf("cannot write the rooms read: %v", err)
			}
			back, err := ReadRooms(buf.Bytes())
			if err != nil || len(back) != len(rooms) {
				t.Fatalf("cannot read the rooms written: %v\n%s", err, buf.String())
			}
		}
		file, err := Read(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error without a place: %v", err)
			}
			return
		}
		for _, u := range file.Users {
			var buf bytes.Buffer
			if err := Write(&buf, u); err != nil {
				t.Fatalf("cannot write what was read: %v", err)
			}
			back, err := Read(buf.Bytes())
			if err != nil || len(back.Users) != 1 {
				t.Fatalf("cannot read what was written: %v %+v\n%s", err, back, buf.String())
			}
		}
	})
}
