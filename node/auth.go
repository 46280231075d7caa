package node

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// userDB authenticates submission users against bcrypt or argon2id hashes
// from the config. It implements smtp.Authenticator.
type userDB struct {
	hashes map[string]string
	// dummy is checked for unknown users so that the time taken does not
	// reveal which user names exist.
	dummy string
}

func newUserDB(users []UserConfig) *userDB {
	db := &userDB{hashes: make(map[string]string, len(users))}
	for _, u := range users {
		db.hashes[u.Name] = u.Hash
	}
	if len(users) > 0 {
		// Cost 10 matches the common bcrypt default, so the decoy costs about
		// as much as a real check.
		d, err := bcrypt.GenerateFromPassword([]byte("decoy"), bcrypt.DefaultCost)
		if err == nil {
			db.dummy = string(d)
		}
	}
	return db
}

// Authenticate reports whether pass matches the hash configured for user.
func (db *userDB) Authenticate(user, pass string) bool {
	h, ok := db.hashes[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword([]byte(db.dummy), []byte(pass))
		return false
	}
	good, err := verifyPassword(h, pass)
	return err == nil && good
}

// checkPasswordHash validates the format of a configured hash.
func checkPasswordHash(h string) error {
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

func verifyPassword(h, pass string) (bool, error) {
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
