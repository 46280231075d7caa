package node

import (
	"testing"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/passwd"
)

func TestPasswordHashes(t *testing.T) {
	// argon2id of "secret" with salt "saltsalt", m=64 t=1 p=1, 16-byte key, computed below.
	h := argonHashForTest(t, "secret")
	bc := bcryptHashForTest(t, "secret")
	db := newUserDB([]config.User{{Name: "a", Hash: h}, {Name: "b", Hash: bc}})
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"a", "secret", true}, {"a", "wrong", false}, {"b", "secret", true}, {"b", "Secret", false}, {"nobody", "secret", false},
	}
	for _, tt := range tests {
		if got := db.Authenticate(tt.user, tt.pass); got != tt.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.want)
		}
	}
	for _, bad := range []string{"$argon2id$v=18$m=64,t=1,p=1$c2FsdA$YWJj", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$YWJjZGVmZ2hpamtsbW5vcA", "$2a$xx"} {
		if err := passwd.Check(bad); err == nil {
			t.Errorf("passwd.Check(%q) accepted a bad hash", bad)
		}
	}
}
