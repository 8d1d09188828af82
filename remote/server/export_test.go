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

// SetMaxSessionBlobs lowers the per-session blob limit for a test.
func (s *Server) SetMaxSessionBlobs(n int) { s.maxBlobs = n }
