package node

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func bcryptHashForTest(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}
