package passwd

import "golang.org/x/crypto/bcrypt"

// Users authenticates submission users against their configured hashes
// (auth.users). It implements smtp.Authenticator.
type Users struct {
	hashes map[string]string
	// decoy is checked for unknown users so that the time taken does not
	// reveal which user names exist.
	decoy string
}

// NewUsers returns the authenticator for hashes, user name to hash (each
// already accepted by Check).
func NewUsers(hashes map[string]string) *Users {
	u := &Users{hashes: hashes}
	if len(hashes) > 0 {
		// Cost 10 matches the common bcrypt default, so the decoy costs about
		// as much as a real check.
		d, err := bcrypt.GenerateFromPassword([]byte("decoy"), bcrypt.DefaultCost)
		if err == nil {
			u.decoy = string(d)
		}
	}
	return u
}

// Authenticate reports whether pass matches the hash configured for user.
func (u *Users) Authenticate(user, pass string) bool {
	h, ok := u.hashes[user]
	if !ok {
		_ = bcrypt.CompareHashAndPassword([]byte(u.decoy), []byte(pass))
		return false
	}
	good, err := Verify(h, pass)
	return err == nil && good
}
