package email

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// TNEF (winmail.dat, application/ms-tnef) is how Outlook and Exchange
// wrap a message's attachments and rich body when they send "Rich Text"
// mail (C09). No maintained Go module for it is reachable here, so this
// is a small reader of the parts we need (MS-OXTNEF): the attribute
// stream, attachments (attAttachRendData starts one; attAttachTitle or
// the MAPI property PR_ATTACH_LONG_FILENAME names it; attAttachData holds
// its bytes) and a plain-text body (attBody or PR_BODY).
//
// The input is untrusted: every length and count is checked against the
// bytes that are left, nothing is allocated beyond what the input holds,
// and a broken stream ends the reading with what was read so far and an
// error saying where it broke. Compressed RTF bodies and embedded
// messages are not decoded (they stay in winmail.dat).

const tnefSignature = 0x223E9F78

// TNEF attribute ids (type in the high word, id in the low word).
const (
	attBody           = 0x0002800C
	attAttachData     = 0x0006800F
	attAttachTitle    = 0x00018010
	attAttachRendData = 0x00069002
	attMAPIProps      = 0x00069003
	attAttachment     = 0x00069005
	attOemCodepage    = 0x00069007
)

// MAPI property ids and types we read.
const (
	prBody             = 0x1000
	prMessageCodepage  = 0x3FFD
	prDisplayName      = 0x3001
	prAttachDataBin    = 0x3701
	prAttachFilename   = 0x3704
	prAttachLongName   = 0x3707
	prAttachMIMETag    = 0x370E
	ptString8          = 0x001E
	ptUnicode          = 0x001F
	ptBinary           = 0x0102
	ptObject           = 0x000D
	ptMultiValued      = 0x1000
	maxTNEFAttachments = 1000
)

type tnefMessage struct {
	Body        string // plain-text body, "" when the TNEF has none
	Attachments []tnefAttachment
	Lost        []string // names of attachments whose bytes could not be read
}

type tnefAttachment struct {
	Name     string // the long file name when given, else the short title
	MIMEType string // from PR_ATTACH_MIME_TAG; often empty
	Data     []byte // shares the input's memory
}

// decodeTNEF reads a TNEF stream. It returns nil and an error when b is
// not TNEF; otherwise what it could read, with an error when the stream
// is broken somewhere.
func decodeTNEF(b []byte) (*tnefMessage, error) {
	r := &tnefReader{b: b}
	if sig, ok := r.u32(); !ok || sig != tnefSignature {
		return nil, errors.New("not a TNEF stream (bad signature)")
	}
	if _, ok := r.u16(); !ok { // legacy key
		return &tnefMessage{}, errors.New("truncated after the signature")
	}
	d := &tnefDecoder{msg: &tnefMessage{}, codepage: 1252}
	var firstErr error
	for r.left() > 0 {
		level, _ := r.u8()
		id, ok1 := r.u32()
		n, ok2 := r.u32()
		if !ok1 || !ok2 {
			firstErr = fmt.Errorf("truncated attribute header at byte %d", r.off)
			break
		}
		if level != 1 && level != 2 {
			firstErr = fmt.Errorf("bad attribute level %d at byte %d", level, r.off-9)
			break
		}
		data, ok := r.bytes(uint64(n))
		if !ok {
			firstErr = fmt.Errorf("attribute 0x%08X claims %d bytes, only %d left", id, n, r.left())
			break
		}
		sum, ok := r.u16()
		if !ok {
			firstErr = fmt.Errorf("truncated checksum of attribute 0x%08X", id)
		} else if sum != tnefChecksum(data) && firstErr == nil {
			firstErr = fmt.Errorf("bad checksum of attribute 0x%08X", id)
		}
		if err := d.attribute(id, data); err != nil && firstErr == nil {
			firstErr = err
		}
		if len(d.msg.Attachments) >= maxTNEFAttachments {
			firstErr = fmt.Errorf("more than %d attachments", maxTNEFAttachments)
			break
		}
	}
	d.closeAttachment()
	return d.msg, firstErr
}

func tnefChecksum(b []byte) uint16 {
	var s uint16
	for _, c := range b {
		s += uint16(c)
	}
	return s
}

type tnefDecoder struct {
	msg      *tnefMessage
	codepage uint32
	cur      *tnefAttachment
	curLong  bool // cur.Name is the long name
}

func (d *tnefDecoder) closeAttachment() {
	switch {
	case d.cur == nil:
	case d.cur.Data != nil:
		d.msg.Attachments = append(d.msg.Attachments, *d.cur)
	case d.cur.Name != "":
		// Named but without its bytes (a cut stream, an embedded
		// message): say so rather than show an empty file.
		d.msg.Lost = append(d.msg.Lost, d.cur.Name)
	}
	d.cur, d.curLong = nil, false
}

func (d *tnefDecoder) attachment() *tnefAttachment {
	if d.cur == nil {
		d.cur = &tnefAttachment{}
	}
	return d.cur
}

func (d *tnefDecoder) attribute(id uint32, data []byte) error {
	switch id {
	case attOemCodepage:
		if len(data) >= 4 {
			d.codepage = binary.LittleEndian.Uint32(data)
		}
	case attBody:
		if d.msg.Body == "" {
			d.msg.Body = d.string8(data)
		}
	case attMAPIProps:
		return readMAPIProps(data, func(id, typ uint16, v []byte) {
			switch {
			case id == prMessageCodepage && len(v) >= 4:
				d.codepage = binary.LittleEndian.Uint32(v)
			case id == prBody && d.msg.Body == "":
				d.msg.Body = d.mapiString(typ, v)
			}
		})
	case attAttachRendData:
		d.closeAttachment()
		d.attachment()
	case attAttachTitle:
		if a := d.attachment(); !d.curLong {
			a.Name = d.string8(data)
		}
	case attAttachData:
		d.attachment().Data = data
	case attAttachment:
		a := d.attachment()
		return readMAPIProps(data, func(id, typ uint16, v []byte) {
			switch id {
			case prAttachLongName:
				if s := d.mapiString(typ, v); s != "" {
					a.Name, d.curLong = s, true
				}
			case prAttachFilename, prDisplayName:
				if a.Name == "" {
					a.Name = d.mapiString(typ, v)
				}
			case prAttachMIMETag:
				a.MIMEType = strings.ToLower(strings.TrimSpace(d.mapiString(typ, v)))
			case prAttachDataBin:
				if a.Data == nil && typ == ptBinary {
					a.Data = v
				}
			}
		})
	}
	return nil
}

// string8 decodes an 8-bit string in the message's code page.
func (d *tnefDecoder) string8(b []byte) string {
	if i := tnefIndexNUL(b); i >= 0 {
		b = b[:i]
	}
	s, _ := decodeCharset(codepageCharset(d.codepage), b)
	return s
}

func (d *tnefDecoder) mapiString(typ uint16, b []byte) string {
	switch typ {
	case ptUnicode:
		u := make([]uint16, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			c := binary.LittleEndian.Uint16(b[i:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		return string(utf16.Decode(u))
	case ptString8, ptBinary:
		return d.string8(b)
	}
	return ""
}

func tnefIndexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// codepageCharset maps a Windows code page number to a charset label.
func codepageCharset(cp uint32) string {
	switch {
	case cp >= 1250 && cp <= 1258, cp == 874:
		return fmt.Sprintf("windows-%d", cp)
	case cp > 28590 && cp <= 28606:
		return fmt.Sprintf("iso-8859-%d", cp-28590)
	}
	switch cp {
	case 932:
		return "shift_jis"
	case 936, 54936:
		return "gb18030"
	case 949, 51949:
		return "euc-kr"
	case 950:
		return "big5"
	case 20866:
		return "koi8-r"
	case 21866:
		return "koi8-u"
	case 51932:
		return "euc-jp"
	case 50220, 50221, 50222:
		return "iso-2022-jp"
	case 866:
		return "ibm866"
	case 65001:
		return "utf-8"
	}
	// 437/850 are OEM code pages Outlook writes while the strings are ANSI.
	return "windows-1252"
}

// readMAPIProps walks a MAPI property list (MS-OXTNEF 2.1.3.4) and calls
// fn with the first value of each property.
func readMAPIProps(b []byte, fn func(id, typ uint16, v []byte)) error {
	r := &tnefReader{b: b}
	count, ok := r.u32()
	if !ok {
		return errors.New("truncated MAPI property list")
	}
	for i := uint32(0); i < count; i++ {
		typ, ok1 := r.u16()
		id, ok2 := r.u16()
		if !ok1 || !ok2 {
			return fmt.Errorf("MAPI property list truncated after %d of %d properties", i, count)
		}
		if id >= 0x8000 { // named property: GUID, kind, then an id or a name
			if _, ok := r.bytes(16); !ok {
				return errors.New("truncated named MAPI property")
			}
			kind, _ := r.u32()
			switch kind {
			case 0:
				if _, ok := r.bytes(4); !ok {
					return errors.New("truncated named MAPI property")
				}
			case 1:
				n, _ := r.u32()
				if _, ok := r.bytes(tnefPad4(uint64(n))); !ok {
					return errors.New("truncated MAPI property name")
				}
			default:
				return fmt.Errorf("unknown MAPI property name kind %d", kind)
			}
		}
		multi := typ&ptMultiValued != 0
		base := typ &^ ptMultiValued
		values := uint32(1)
		if multi {
			if values, ok = r.u32(); !ok {
				return errors.New("truncated MAPI value count")
			}
		}
		size, fixed := mapiFixedSize(base)
		variable := base == ptString8 || base == ptUnicode || base == ptBinary || base == ptObject
		if !fixed && !variable {
			return fmt.Errorf("unknown MAPI property type 0x%04X", base)
		}
		if variable && !multi {
			// Variable-length values carry a value count even when single.
			if values, ok = r.u32(); !ok {
				return errors.New("truncated MAPI value count")
			}
		}
		for j := uint32(0); j < values; j++ {
			var v []byte
			if fixed {
				if v, ok = r.bytes(size); !ok {
					return errors.New("truncated MAPI value")
				}
			} else {
				n, ok := r.u32()
				if !ok {
					return errors.New("truncated MAPI value length")
				}
				raw, ok := r.bytes(tnefPad4(uint64(n)))
				if !ok {
					return fmt.Errorf("MAPI value claims %d bytes, only %d left", n, r.left())
				}
				v = raw[:n]
			}
			if j == 0 && base != ptObject {
				fn(id, base, v)
			}
		}
	}
	return nil
}

func mapiFixedSize(typ uint16) (uint64, bool) {
	switch typ {
	case 0x0001: // PT_NULL
		return 4, true
	case 0x0002, 0x0003, 0x0004, 0x000A, 0x000B: // short, long, float, error, boolean (padded to 4)
		return 4, true
	case 0x0005, 0x0006, 0x0007, 0x0014, 0x0040: // double, currency, apptime, int64, systime
		return 8, true
	case 0x0048: // CLSID
		return 16, true
	}
	return 0, false
}

func tnefPad4(n uint64) uint64 { return (n + 3) &^ 3 }

// tnefReader reads little-endian values, never past the end.
type tnefReader struct {
	b   []byte
	off int
}

func (r *tnefReader) left() int { return len(r.b) - r.off }

func (r *tnefReader) bytes(n uint64) ([]byte, bool) {
	if n > uint64(r.left()) {
		return nil, false
	}
	v := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return v, true
}

func (r *tnefReader) u8() (byte, bool) {
	v, ok := r.bytes(1)
	if !ok {
		return 0, false
	}
	return v[0], true
}

func (r *tnefReader) u16() (uint16, bool) {
	v, ok := r.bytes(2)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

func (r *tnefReader) u32() (uint32, bool) {
	v, ok := r.bytes(4)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint32(v), true
}
