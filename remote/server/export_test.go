package server

// SessionBlobs returns how many blobs open session sid has named (-1 when
// it is not open): what it holds in server memory.
func (s *Server) SessionBlobs(sid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[sid]
	if sess == nil {
		return -1
	}
	return len(sess.blobs)
}

// SessionPinned returns how many blobs open session sid proved or
// uploaded: what gc keeps for it.
func (s *Server) SessionPinned(sid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.sessions[sid].blobs {
		if st&blobHeld != 0 {
			n++
		}
	}
	return n
}

// SetMaxSessionBlobs lowers the per-session blob limit for a test.
func (s *Server) SetMaxSessionBlobs(n int) { s.maxBlobs = n }
