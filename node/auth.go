package node

import (
	"golang.org/x/crypto/bcrypt"

	"github.com/meshd/meshd/node/config"
	"github.com/meshd/meshd/node/passwd"
)

// userDB authenticates submission users against bcrypt or argon2id hashes
// from the config. It implements smtp.Authenticator.
type userDB struct {
	hashes map[string]string
	// dummy is checked for unknown users so that the time taken does not
	// reveal which user names exist.
	dummy string
}

func newUserDB(users []config.User) *userDB {
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
	good, err := passwd.Verify(h, pass)
	return err == nil && good
}
