// Package passwd checks and verifies the password hashes of submission
// users (auth.users in the config): bcrypt ($2a$, $2b$, $2y$) and argon2id
// in the PHC string format. The config checks a hash's format at load
// (Check); Users authenticates submission logins against them (Verify).
package passwd

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Check validates the format of a configured hash.
func Check(h string) error {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return fmt.Errorf("invalid bcrypt hash: %v", err)
		}
		return nil
	case strings.HasPrefix(h, "$argon2id$"):
		_, err := parseArgon2id(h)
		return err
	}
	return errors.New("must be a bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$) hash")
}

// Verify reports whether pass matches the hash h.
func Verify(h, pass string) (bool, error) {
	if strings.HasPrefix(h, "$argon2id$") {
		p, err := parseArgon2id(h)
		if err != nil {
			return false, err
		}
		got := argon2.IDKey([]byte(pass), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		return subtle.ConstantTimeCompare(got, p.key) == 1, nil
	}
	err := bcrypt.CompareHashAndPassword([]byte(h), []byte(pass))
	if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		return false, nil
	}
	return err == nil, err
}

type argon2Params struct {
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

// parseArgon2id reads the PHC string format:
// $argon2id$v=19$m=65536,t=3,p=4$<salt b64>$<key b64> (unpadded standard base64).
func parseArgon2id(h string) (argon2Params, error) {
	var p argon2Params
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, errors.New("invalid argon2id hash: want $argon2id$v=19$m=..,t=..,p=..$salt$key")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, fmt.Errorf("invalid argon2id hash: unsupported version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, fmt.Errorf("invalid argon2id hash: bad parameters %q", parts[3])
	}
	if p.memory == 0 || p.time == 0 || p.threads == 0 {
		return p, errors.New("invalid argon2id hash: parameters must be positive")
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return p, errors.New("invalid argon2id hash: bad salt encoding")
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 {
		return p, errors.New("invalid argon2id hash: bad key encoding")
	}
	return p, nil
}
