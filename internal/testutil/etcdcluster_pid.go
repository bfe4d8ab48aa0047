package testutil

// PID is the member's process id (0 when it is not running), for reading
// its memory and CPU from /proc.
func (m *EtcdMember) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}
