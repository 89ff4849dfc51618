package redfish

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"
	"time"
)

// session is one login. Its token is not kept: only its SHA-256, so that
// looking a token up leaks nothing usable through timing.
type session struct {
	id       string
	user     string
	remote   string
	created  time.Time
	lastUsed time.Time
	hash     [32]byte
}

// sessionStore holds the sessions in memory; a restarted service has none.
type sessionStore struct {
	mu      sync.Mutex
	now     func() time.Time
	timeout time.Duration
	limit   int
	byID    map[string]*session
	byHash  map[[32]byte]*session
}

func newSessionStore(timeout time.Duration, limit int, now func() time.Time) *sessionStore {
	return &sessionStore{
		now:     now,
		timeout: timeout,
		limit:   limit,
		byID:    map[string]*session{},
		byHash:  map[[32]byte]*session{},
	}
}

// randomHex returns n random bytes in hex. crypto/rand.Read does not fail.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// create starts a session and returns it with its token, evicting the oldest
// session when the store is full.
func (s *sessionStore) create(user, remote string) (session, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	for len(s.byID) >= s.limit {
		oldest := slices.MinFunc(s.listLocked(), func(a, b session) int { return a.created.Compare(b.created) })
		s.removeLocked(s.byID[oldest.id])
	}
	token := randomHex(32)
	ss := &session{user: user, remote: remote, created: now, lastUsed: now, hash: sha256.Sum256([]byte(token))}
	for {
		ss.id = randomHex(8)
		if _, taken := s.byID[ss.id]; !taken {
			break
		}
	}
	s.byID[ss.id] = ss
	s.byHash[ss.hash] = ss
	return *ss, token
}

// authenticate returns the session of token and marks it used.
func (s *sessionStore) authenticate(token string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	ss, ok := s.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return session{}, false
	}
	ss.lastUsed = now
	return *ss, true
}

func (s *sessionStore) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	ss, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	return *ss, true
}

func (s *sessionStore) delete(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	ss, ok := s.byID[id]
	if ok {
		s.removeLocked(ss)
	}
	return ok
}

// list returns the live sessions, oldest first.
func (s *sessionStore) list() []session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	return s.listLocked()
}

func (s *sessionStore) listLocked() []session {
	l := make([]session, 0, len(s.byID))
	for _, ss := range s.byID {
		l = append(l, *ss)
	}
	slices.SortFunc(l, func(a, b session) int {
		return cmp.Or(a.created.Compare(b.created), cmp.Compare(a.id, b.id))
	})
	return l
}

func (s *sessionStore) expireLocked(now time.Time) {
	for _, ss := range s.byID {
		if now.Sub(ss.lastUsed) >= s.timeout {
			s.removeLocked(ss)
		}
	}
}

func (s *sessionStore) removeLocked(ss *session) {
	delete(s.byID, ss.id)
	delete(s.byHash, ss.hash)
}
