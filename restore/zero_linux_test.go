package restore

import "testing"

func TestIsZero(t *testing.T) {
	big := make([]byte, 3<<20)
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, true},
		{"one zero", []byte{0}, true},
		{"one non-zero", []byte{7}, false},
		{"zeros", make([]byte, 4096), true},
		{"big zeros", big, true},
		{"constant non-zero", []byte{1, 1, 1, 1}, false},
		{"last byte set", append(make([]byte, 5000), 1), false},
		{"first byte set", append([]byte{1}, make([]byte, 5000)...), false},
		{"middle byte set", func() []byte { b := make([]byte, 2<<20); b[1<<20+3] = 9; return b }(), false},
	}
	for _, tt := range tests {
		if got := isZero(tt.b); got != tt.want {
			t.Errorf("%s: isZero = %v, want %v", tt.name, got, tt.want)
		}
	}
}
