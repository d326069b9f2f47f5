package queue

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// JournalName is the file beside FileName where the file store makes new
// messages durable before it answers their senders: each group of
// messages is appended as one contiguous write and one flush (bbolt's
// commit flushes scattered pages twice), and is then written into the
// store file by a later, larger commit. Opening the store writes into it
// whatever the journal holds that the store file does not.
const JournalName = "queue.journal"

// The journal file starts at journalInitial bytes and doubles, filled
// with zeros ahead of the records (a flush of blocks already allocated is
// about half the cost of one that grows the file), up to journalMax; then
// it starts again from its first byte, once everything in it is in the
// store file.
const (
	journalInitial = 1 << 20
	journalMax     = 32 << 20
)

// journalHeader is a record's head: CRC-32C of the rest of the record,
// then the body's length, the lap and the sequence number, little endian.
// The body is the message id (length-prefixed) and its stored value.
const journalHeader = 4 + 4 + 8 + 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalRecord is one new message in the journal.
type journalRecord struct {
	seq   uint64
	id    string
	value []byte    // joinValue(record, payload), as the store file keeps it
	at    time.Time // when the journal had made it durable (applyQueue)
}

// appendJournalRecord appends r, in lap, to b.
func appendJournalRecord(b []byte, lap uint64, r *journalRecord) []byte {
	start := len(b)
	b = append(b, make([]byte, journalHeader)...)
	b = appendString(b, r.id)
	b = append(b, r.value...)
	h := b[start:]
	binary.LittleEndian.PutUint32(h[4:], uint32(len(h)-journalHeader))
	binary.LittleEndian.PutUint64(h[8:], lap)
	binary.LittleEndian.PutUint64(h[16:], r.seq)
	binary.LittleEndian.PutUint32(h[0:], crc32.Checksum(h[4:], castagnoli))
	return b
}

// errJournalCorrupt is a record whose checksum holds but whose body does
// not decode: not a torn write, which fails its checksum.
var errJournalCorrupt = errors.New("queue: a journal record with a valid checksum does not decode")

// scanJournal reads the records at the head of r (size bytes): those of
// the first record's lap, each with a sequence number above the one
// before and, past after, a valid checksum. It stops, without error, at
// the first record that is not: a torn write (the last group, whose
// senders were not answered), the zeros ahead of the records, or a
// record of an earlier lap (laps start at the file's first byte, and a
// lap starts only once everything before it is in the store file). It
// hands fn the records past after. Records up to after (already in the
// store file) are skipped by their heads: a torn record is the last of
// its lap, so whatever follows one is of an earlier lap or a lower
// number. A record's checksum is checked before its body is held in
// memory: a length that only claims a large body costs a read, not an
// allocation.
func scanJournal(r io.ReaderAt, size int64, after uint64, fn func(journalRecord) error) (journalChain, error) {
	var h [journalHeader]byte
	var c journalChain
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)
	for first := true; ; first = false {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return c, nil // the end of the file
		}
		n := int64(binary.LittleEndian.Uint32(h[4:]))
		lap, seq := binary.LittleEndian.Uint64(h[8:]), binary.LittleEndian.Uint64(h[16:])
		if n == 0 || n > size-c.end-journalHeader || (!first && (lap != c.lap || seq <= c.last)) {
			return c, nil
		}
		if seq <= after {
			if _, err := br.Discard(int(n)); err != nil {
				return c, nil
			}
			c.end, c.lap, c.last = c.end+journalHeader+n, lap, seq
			continue
		}
		body := io.NewSectionReader(r, c.end+journalHeader, n)
		crc := crc32.New(castagnoli)
		crc.Write(h[4:])
		if _, err := io.Copy(crc, body); err != nil || crc.Sum32() != binary.LittleEndian.Uint32(h[0:]) {
			return c, nil
		}
		b := make([]byte, n)
		if _, err := body.ReadAt(b, 0); err != nil {
			return c, fmt.Errorf("queue: reading the journal: %w", err)
		}
		d := reader{b: b}
		id := d.string()
		if d.err != nil || !validID(id) {
			return c, fmt.Errorf("%w (sequence %d)", errJournalCorrupt, seq)
		}
		if _, _, err := decodeValue(id, d.b); err != nil {
			return c, fmt.Errorf("%w (sequence %d): %w", errJournalCorrupt, seq, err)
		}
		if err := fn(journalRecord{seq: seq, id: id, value: d.b}); err != nil {
			return c, err
		}
		c.end, c.lap, c.last = c.end+journalHeader+n, lap, seq
		br.Reset(io.NewSectionReader(r, c.end, size-c.end))
	}
}

// journalChain is where a scan of the journal stopped: the end of the
// last record it took, that record's lap and sequence number.
type journalChain struct {
	end       int64
	lap, last uint64
}

// journal is the journal file as the store writes it: one goroutine (the
// journal's committer) at a time.
type journal struct {
	f    *os.File
	size int64  // the file's length: zeros past pos
	pos  int64  // where the next group is written
	lap  uint64 // this lap's number, random: a record of another lap ends a scan
	next uint64 // the next record's sequence number
	max  int64  // journalMax; tests set their own
	buf  []byte
}

// openJournalFile opens (or creates, mode 0600) dir's journal file,
// refusing one that is not a plain file; created reports a new file.
func openJournalFile(dir string, readOnly bool) (f *os.File, created bool, err error) {
	path := filepath.Join(dir, JournalName)
	flag := os.O_RDONLY
	if !readOnly {
		flag = os.O_RDWR
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			flag |= os.O_CREATE | os.O_EXCL
			created = true
		}
	}
	f, err = os.OpenFile(path, flag|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("queue: opening %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a plain file", path)
	}
	if err == nil && !readOnly {
		err = f.Chmod(0o600) // a file made by hand is tightened
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	return f, created, nil
}

// startJournal readies f for writing after everything in it is in the
// store file (up to sequence number applied): a new lap from its first
// byte, at least journalInitial bytes of zeros.
func startJournal(f *os.File, applied uint64, limit int64) (*journal, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	j := &journal{f: f, size: fi.Size(), next: applied + 1, max: limit}
	if err := j.newLap(); err != nil {
		return nil, err
	}
	if initial := min(journalInitial, limit); j.size < initial {
		if err := j.grow(initial); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// resumeJournal readies f for writing after the records of chain, in
// its lap: the journal holds records the store file could not take when
// it was opened (a full disk), which a new lap would overwrite.
func resumeJournal(f *os.File, chain journalChain, limit int64) (*journal, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &journal{f: f, size: fi.Size(), pos: chain.end, lap: chain.lap, next: chain.last + 1, max: limit}, nil
}

// newLap starts writing from the file's first byte under a new lap
// number.
func (j *journal) newLap() error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	j.lap, j.pos = binary.LittleEndian.Uint64(b[:]), 0
	return nil
}

var zeros [64 << 10]byte

// grow fills the file with zeros up to size and flushes it.
func (j *journal) grow(size int64) error {
	for off := j.size; off < size; {
		n := min(int64(len(zeros)), size-off)
		if _, err := j.f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("queue: growing the journal: %w", err)
		}
		off += n
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("queue: growing the journal: %w", err)
	}
	j.size = size
	return nil
}

// mustWrap reports whether a group of n bytes is written only after the
// file starts again from its first byte (which needs everything in it in
// the store file first).
func (j *journal) mustWrap(n int64) bool {
	return j.pos+n > j.size && j.size >= journalMax && j.pos > 0
}

// write numbers recs, appends them as one write and flushes it. A
// failed write leaves its sequence numbers unused: what it left in the
// file is followed by higher ones, or by nothing.
func (j *journal) write(recs []*journalRecord) error {
	j.buf = j.buf[:0]
	for _, r := range recs {
		r.seq = j.next
		j.next++
		j.buf = appendJournalRecord(j.buf, j.lap, r)
	}
	n := int64(len(j.buf))
	if fi, err := j.f.Stat(); err != nil || fi.Size() < j.size {
		// Cut under the running store: the records acknowledged in it
		// would be lost at a crash (they are still written into the
		// store file from memory).
		return fmt.Errorf("%s was cut shorter since it was written", j.f.Name())
	}
	if j.pos+n > j.size {
		if err := j.grow(max(min(2*j.size, j.max), j.pos+n)); err != nil {
			return err
		}
	}
	if _, err := j.f.WriteAt(j.buf, j.pos); err != nil {
		return fmt.Errorf("queue: writing the journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("queue: flushing the journal: %w", err)
	}
	j.pos += n
	if cap(j.buf) > 4<<20 {
		j.buf = nil // a group of large messages: not kept
	}
	return nil
}
