package passwd

import (
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func TestUsersAuthenticate(t *testing.T) {
	// argon2id of "secret" with salt "saltsalt", m=64 t=1 p=1, 16-byte key.
	salt := []byte("saltsalt")
	key := argon2.IDKey([]byte("secret"), salt, 1, 64, 1, 16)
	h := fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	bc, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, good := range []string{h, string(bc)} {
		if err := Check(good); err != nil {
			t.Errorf("Check(%q) = %v, want nil", good, err)
		}
	}
	u := NewUsers(map[string]string{"a": h, "b": string(bc)})
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"a", "secret", true}, {"a", "wrong", false}, {"b", "secret", true}, {"b", "Secret", false}, {"nobody", "secret", false},
	}
	for _, tt := range tests {
		if got := u.Authenticate(tt.user, tt.pass); got != tt.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.want)
		}
	}
	for _, bad := range []string{"$argon2id$v=18$m=64,t=1,p=1$c2FsdA$YWJj", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$YWJjZGVmZ2hpamtsbW5vcA", "$2a$xx"} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted a bad hash", bad)
		}
	}
}
