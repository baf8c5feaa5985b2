package certs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"strings"
	"testing"
)

// fakeELF is a minimal ELF64 executable header for machine, with a
// PT_INTERP program header when dynamic (what a cgo build has).
func fakeELF(machine elf.Machine, dynamic bool) []byte {
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Ehsize: 64, Phentsize: 56}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	if dynamic {
		h.Phoff, h.Phnum = 64, 1
	}
	binary.Write(&b, binary.LittleEndian, h)
	if dynamic {
		binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP)})
	}
	b.WriteString("lghsctl")
	return b.Bytes()
}

func TestTheBinaryCopiedToTheHostMustBeAStaticLinuxBuildForItsArchitecture(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  []byte
		arch string
		want string
	}{
		{"static amd64", fakeELF(elf.EM_X86_64, false), "x86_64", ""},
		{"static arm64", fakeELF(elf.EM_AARCH64, false), "aarch64", ""},
		{"arm64 on amd64", fakeELF(elf.EM_AARCH64, false), "x86_64", "is for EM_AARCH64, the host is x86_64"},
		{"cgo build", fakeELF(elf.EM_X86_64, true), "x86_64", "is dynamically linked"},
		{"a macOS binary", []byte("\xcf\xfa\xed\xfe mach-o"), "x86_64", "is not a Linux executable"},
	} {
		err := checkELF(tc.bin, tc.arch)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
