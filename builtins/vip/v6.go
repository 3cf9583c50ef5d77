package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// IPv6 addresses cannot carry a label (IFA_LABEL is IPv4 only), so harules
// marks the IPv6 VIPs it adds with the address protocol instead: IFA_PROTO
// (Linux 6.1 and later), the attribute the kernel keeps for "who added this
// address", set to AddrProto. A crashed run's IPv6 VIPs are then found in
// the kernel itself, like the labelled IPv4 ones: no state file that a crash
// or a wiped state directory could lose, and no guess from flags that other
// software (keepalived also adds its IPv6 VIPs with nodad) sets as well.
// An iproute2 that knows the attribute prints it as "proto 0x68" in
// `ip -6 addr show` (Debian 12's iproute2 6.1 does not).

// AddrProto is the IFA_PROTO value on every IPv6 address harules adds.
const AddrProto = 0x68

// ifaProto is IFA_PROTO (include/uapi/linux/if_addr.h, Linux 6.1).
const ifaProto = 11

// addr6 is one IPv6 address as the kernel lists it.
type addr6 struct {
	ip        netip.Addr
	bits      int
	linkIndex int
	proto     uint8
	flags     uint32
}

// addV6 adds (or replaces) v with IFA_F_NODAD, so the address is usable at
// once instead of after a second of duplicate address detection (harules
// probes for a holder itself before a takeover), and with AddrProto.
func (m *Manager) addV6(link netlink.Link, v VIP) error {
	before, found, err := m.findV6(link.Attrs().Index, v.Address.Addr())
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(unix.AF_INET6)
	msg.Prefixlen = uint8(v.Address.Bits())
	msg.Index = uint32(link.Attrs().Index)
	msg.Flags = unix.IFA_F_NODAD
	req.AddData(msg)
	ip := v.Address.Addr().AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(unix.IFA_F_NODAD)))
	req.AddData(nl.NewRtAttr(ifaProto, []byte{AddrProto}))
	// A request without a socket of its own uses one opened on the calling
	// thread: open it inside the manager's namespace.
	if err := m.inNS(func() error {
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	}); err != nil {
		return err
	}
	after, ok, err := m.findV6(link.Attrs().Index, v.Address.Addr())
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("address %s not listed after it was added", v.Address)
	}
	// A kernel older than 6.1 ignores IFA_PROTO: the address would be
	// invisible to Owned and ReleaseStale, so a crash would leave it
	// behind. Refuse rather than hold an address nothing can clean up.
	// (Linux 6.18 replaces the protocol of an address that was already
	// there, so harules adopts it; a kernel that kept the old protocol of
	// such an address is not taken for one without IFA_PROTO.)
	if after.proto != AddrProto && (!found || before.proto == AddrProto) {
		if err := m.nl.AddrDel(link, &netlink.Addr{IPNet: prefixNet(after.ip, after.bits)}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("the kernel did not record IFA_PROTO (Linux 6.1 or later is needed for IPv6 VIPs), and removing the address failed: %w", err)
		}
		return errors.New("the kernel did not record IFA_PROTO on the address (Linux 6.1 or later is needed for IPv6 VIPs); address removed again")
	}
	return nil
}

// listV6 dumps the IPv6 addresses of the namespace (of one link when
// linkIndex > 0) with their IFA_PROTO, which netlink.AddrList does not read.
func (m *Manager) listV6(linkIndex int) ([]addr6, error) {
	var out []addr6
	for i := 0; ; i++ {
		var msgs [][]byte
		err := m.inNS(func() error {
			req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
			req.AddData(nl.NewIfAddrmsg(unix.AF_INET6))
			var err error
			msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
			return err
		})
		if errors.Is(err, nl.ErrDumpInterrupted) && i < dumpRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, b := range msgs {
			if len(b) < unix.SizeofIfAddrmsg {
				continue
			}
			hdr := nl.DeserializeIfAddrmsg(b)
			if hdr.Family != unix.AF_INET6 || (linkIndex > 0 && int(hdr.Index) != linkIndex) {
				continue
			}
			attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrmsg:])
			if err != nil {
				return nil, fmt.Errorf("parse address attributes: %w", err)
			}
			a := addr6{bits: int(hdr.Prefixlen), linkIndex: int(hdr.Index), flags: uint32(hdr.Flags)}
			for _, at := range attrs {
				switch at.Attr.Type {
				case unix.IFA_ADDRESS:
					if !a.ip.IsValid() {
						a.ip, _ = netip.AddrFromSlice(at.Value)
					}
				case unix.IFA_LOCAL:
					a.ip, _ = netip.AddrFromSlice(at.Value)
				case unix.IFA_FLAGS:
					if len(at.Value) == 4 {
						a.flags = nl.NativeEndian().Uint32(at.Value)
					}
				case ifaProto:
					if len(at.Value) >= 1 {
						a.proto = at.Value[0]
					}
				}
			}
			if a.ip.IsValid() {
				out = append(out, a)
			}
		}
		return out, nil
	}
}

func (m *Manager) findV6(linkIndex int, ip netip.Addr) (addr6, bool, error) {
	addrs, err := m.listV6(linkIndex)
	if err != nil {
		return addr6{}, false, fmt.Errorf("list IPv6 addresses: %w", err)
	}
	for _, a := range addrs {
		if a.ip == ip {
			return a, true, nil
		}
	}
	return addr6{}, false, nil
}

func prefixNet(ip netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, ip.BitLen())}
}
