package email

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unicode/utf16"
)

// tnefTestStream builds a TNEF stream from attributes, with correct
// checksums unless an attribute says otherwise.
type tnefTestAttr struct {
	level   byte
	id      uint32
	data    []byte
	badSum  bool
	lenLies uint32 // when set, written as the length instead of len(data)
}

func tnefTestStream(attrs ...tnefTestAttr) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(tnefSignature))
	binary.Write(&b, binary.LittleEndian, uint16(0x4A1C))
	for _, a := range attrs {
		b.WriteByte(a.level)
		binary.Write(&b, binary.LittleEndian, a.id)
		n := uint32(len(a.data))
		if a.lenLies != 0 {
			n = a.lenLies
		}
		binary.Write(&b, binary.LittleEndian, n)
		b.Write(a.data)
		sum := tnefChecksum(a.data)
		if a.badSum {
			sum++
		}
		binary.Write(&b, binary.LittleEndian, sum)
	}
	return b.Bytes()
}

// tnefTestProps builds a MAPI property list of string and binary values.
type tnefTestProp struct {
	typ, id uint16
	value   []byte
}

func tnefTestProps(props ...tnefTestProp) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(len(props)))
	for _, p := range props {
		binary.Write(&b, binary.LittleEndian, p.typ)
		binary.Write(&b, binary.LittleEndian, p.id)
		switch p.typ {
		case ptString8, ptUnicode, ptBinary:
			binary.Write(&b, binary.LittleEndian, uint32(1))
			binary.Write(&b, binary.LittleEndian, uint32(len(p.value)))
			b.Write(p.value)
			b.Write(make([]byte, int(tnefPad4(uint64(len(p.value))))-len(p.value)))
		default:
			b.Write(p.value)
		}
	}
	return b.Bytes()
}

func tnefTestUTF16(s string) []byte {
	var b bytes.Buffer
	for _, c := range utf16.Encode([]rune(s)) {
		binary.Write(&b, binary.LittleEndian, c)
	}
	b.Write([]byte{0, 0})
	return b.Bytes()
}

// tnefTestC09 is the winmail.dat of case C09.
func tnefTestC09(t testing.TB) []byte {
	t.Helper()
	raw := string(parseTestRead(t, "testdata/cases/C09.eml"))
	m := regexp.MustCompile(`(?s)Content-Transfer-Encoding: base64\n\n(.*?)\n\n`).FindStringSubmatch(raw)
	if m == nil {
		t.Fatal("no winmail.dat in C09.eml")
	}
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(m[1], "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTNEFCaseC09(t *testing.T) {
	msg, err := decodeTNEF(tnefTestC09(t))
	if err != nil {
		t.Fatalf("decodeTNEF: %v", err)
	}
	if len(msg.Attachments) != 1 {
		t.Fatalf("attachments = %+v", msg.Attachments)
	}
	a := msg.Attachments[0]
	if a.Name != "invoice-2041.txt" || len(a.Data) != 60 ||
		parseTestSHA(a.Data) != "4e9805600a7ac3ec64230609344c024ed29bd08ba8537d02cf8bcf995e11208b" {
		t.Errorf("attachment %q, %d bytes, sha256 %s", a.Name, len(a.Data), parseTestSHA(a.Data))
	}
	if !strings.HasPrefix(msg.Body, "Please find the corrected invoice attached.") {
		t.Errorf("Body = %q", msg.Body)
	}
}

func TestTNEFAttributes(t *testing.T) {
	longName := tnefTestProps(
		tnefTestProp{ptUnicode, prAttachLongName, tnefTestUTF16("Übersicht März 2024.xlsx")},
		tnefTestProp{ptString8, prAttachMIMETag, []byte("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\x00")},
	)
	tests := []struct {
		name     string
		stream   []byte
		files    []string // name:content
		body     string
		lost     []string
		wantErr  bool
		nilValue bool
	}{
		{
			name: "long name beats the 8.3 title",
			stream: tnefTestStream(
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachTitle, data: []byte("BERSIC~1.XLS\x00")},
				tnefTestAttr{level: 2, id: attAttachData, data: []byte("sheet")},
				tnefTestAttr{level: 2, id: attAttachment, data: longName},
			),
			files: []string{"Übersicht März 2024.xlsx:sheet"},
		},
		{
			name: "PR_ATTACH_DATA_BIN when attAttachData is missing, PR_BODY as the body",
			stream: tnefTestStream(
				tnefTestAttr{level: 1, id: attMAPIProps, data: tnefTestProps(tnefTestProp{ptString8, prBody, []byte("Body from MAPI\x00")})},
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachment, data: tnefTestProps(
					tnefTestProp{ptString8, prAttachLongName, []byte("a.bin\x00")},
					tnefTestProp{ptBinary, prAttachDataBin, []byte{1, 2, 3}},
				)},
			),
			files: []string{"a.bin:\x01\x02\x03"},
			body:  "Body from MAPI",
		},
		{
			name: "two attachments, code page 1251 for 8-bit names",
			stream: tnefTestStream(
				tnefTestAttr{level: 1, id: attOemCodepage, data: []byte{0xE3, 0x04, 0, 0, 0, 0, 0, 0}},
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachTitle, data: []byte("\xd1\xf7\xe5\xf2.txt\x00")},
				tnefTestAttr{level: 2, id: attAttachData, data: []byte("one")},
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachTitle, data: []byte("two.txt\x00")},
				tnefTestAttr{level: 2, id: attAttachData, data: []byte("two")},
			),
			files: []string{"Счет.txt:one", "two.txt:two"},
		},
		{
			name: "a bad checksum is reported, the data kept",
			stream: tnefTestStream(
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachTitle, data: []byte("x.txt\x00")},
				tnefTestAttr{level: 2, id: attAttachData, data: []byte("data"), badSum: true},
			),
			files:   []string{"x.txt:data"},
			wantErr: true,
		},
		{
			name: "a lying length ends the stream; the named file is reported lost",
			stream: tnefTestStream(
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachTitle, data: []byte("cut.pdf\x00")},
				tnefTestAttr{level: 2, id: attAttachData, data: []byte("%PDF"), lenLies: 0xFFFFFFF0},
			),
			lost:    []string{"cut.pdf"},
			wantErr: true,
		},
		{
			name: "a huge MAPI property count over a few bytes",
			stream: tnefTestStream(
				tnefTestAttr{level: 1, id: attMAPIProps, data: []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x1E, 0x00, 0x00, 0x10, 0xFF, 0xFF, 0xFF, 0xFF}},
			),
			wantErr: true,
		},
		{
			name: "an unknown MAPI type stops the property list only",
			stream: tnefTestStream(
				tnefTestAttr{level: 2, id: attAttachRendData, data: make([]byte, 14)},
				tnefTestAttr{level: 2, id: attAttachment, data: []byte{1, 0, 0, 0, 0x99, 0x09, 0x07, 0x37}},
				tnefTestAttr{level: 2, id: attAttachTitle, data: []byte("ok.txt\x00")},
				tnefTestAttr{level: 2, id: attAttachData, data: []byte("ok")},
			),
			files:   []string{"ok.txt:ok"},
			wantErr: true,
		},
		{
			name:     "not TNEF",
			stream:   []byte("PK\x03\x04 a zip file"),
			wantErr:  true,
			nilValue: true,
		},
		{
			name:    "a bad level byte",
			stream:  append(tnefTestStream(), 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := decodeTNEF(tt.stream)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.nilValue {
				if msg != nil {
					t.Errorf("msg = %+v, want nil", msg)
				}
				return
			}
			var files []string
			for _, a := range msg.Attachments {
				files = append(files, a.Name+":"+string(a.Data))
			}
			if strings.Join(files, "|") != strings.Join(tt.files, "|") {
				t.Errorf("files = %q, want %q", files, tt.files)
			}
			if msg.Body != tt.body {
				t.Errorf("Body = %q, want %q", msg.Body, tt.body)
			}
			if strings.Join(msg.Lost, "|") != strings.Join(tt.lost, "|") {
				t.Errorf("Lost = %q, want %q", msg.Lost, tt.lost)
			}
		})
	}
}

// TestTNEFTruncatedAnywhere cuts C09's winmail.dat at every length: the
// decoder never panics and never returns more bytes than it was given.
func TestTNEFTruncatedAnywhere(t *testing.T) {
	full := tnefTestC09(t)
	for n := 0; n <= len(full); n++ {
		msg, _ := decodeTNEF(full[:n])
		if msg == nil {
			continue
		}
		total := 0
		for _, a := range msg.Attachments {
			total += len(a.Data)
		}
		if total > n {
			t.Fatalf("cut at %d: %d attachment bytes", n, total)
		}
	}
}

// TestTNEFAllocationBounded feeds streams whose lengths and counts claim
// gigabytes: what the decoder allocates stays proportional to its input.
func TestTNEFAllocationBounded(t *testing.T) {
	hugeCount := tnefTestStream(tnefTestAttr{level: 1, id: attMAPIProps,
		data: append([]byte{0xFF, 0xFF, 0xFF, 0x7F}, bytes.Repeat([]byte{0x03, 0x00, 0x01, 0x00, 0, 0, 0, 0}, 64)...)})
	manyValues := tnefTestStream(tnefTestAttr{level: 1, id: attMAPIProps,
		data: append([]byte{1, 0, 0, 0, 0x03, 0x10, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF}, make([]byte, 256)...)})
	bigLength := tnefTestStream(tnefTestAttr{level: 2, id: attAttachData, data: make([]byte, 16), lenLies: 0xFFFFFFFF})
	manyAttachments := tnefTestStream()
	for i := 0; i < 5000; i++ {
		manyAttachments = append(manyAttachments, tnefTestStream(
			tnefTestAttr{level: 2, id: attAttachRendData},
			tnefTestAttr{level: 2, id: attAttachData, data: []byte{1}})[6:]...)
	}
	for name, in := range map[string][]byte{"huge count": hugeCount, "many values": manyValues, "big length": bigLength, "many attachments": manyAttachments} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		msg, _ := decodeTNEF(in)
		runtime.ReadMemStats(&after)
		if allocated := after.TotalAlloc - before.TotalAlloc; allocated > uint64(64*len(in)+64<<10) {
			t.Errorf("%s: %d bytes allocated for %d bytes of input", name, allocated, len(in))
		}
		if msg != nil && len(msg.Attachments) > maxTNEFAttachments {
			t.Errorf("%s: %d attachments", name, len(msg.Attachments))
		}
	}
}

// TestParseTNEFBodyOnly: a mail whose only part is winmail.dat gets its
// text from the TNEF body.
func TestParseTNEFBodyOnly(t *testing.T) {
	dat := base64.StdEncoding.EncodeToString(tnefTestC09(t))
	raw := "From: Tom Becker <tom.becker@example.org>\nSubject: only TNEF\nMIME-Version: 1.0\n" +
		"Content-Type: application/ms-tnef; name=\"winmail.dat\"\nContent-Transfer-Encoding: base64\n\n" + dat + "\n"
	m := Parse([]byte(raw))
	if m.Text != "Please find the corrected invoice attached.\n\nRegards,\nTom" {
		t.Errorf("Text = %q", m.Text)
	}
	if got := strings.Join(parseTestAttachmentNames(m), ","); got != "invoice-2041.txt,winmail.dat" {
		t.Errorf("attachments = %s", got)
	}
}
