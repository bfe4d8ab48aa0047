package agent

// status6 records the IPv6 side of an apply for the control socket: the
// node's IPv6 address, its IPv6 routes and IPv6 VXLAN peers. Called with
// s.mu held.
func (s *statusState) status6(me Node, d Desired) {
	if me.IPv6.IsValid() {
		s.ipv6 = me.IPv6.String()
	}
	s.routes6 = 0
	for _, r := range d.Routes {
		if r.Dst.Addr().Is6() {
			s.routes6++
		}
	}
	s.vteps6 = len(d.VTEPsV6)
}
