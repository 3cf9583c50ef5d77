package vip

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HasCarrier reports whether an interface can carry a VIP's traffic: it is
// administratively up (IFF_UP), its driver reports a carrier (IFF_LOWER_UP),
// and its operational state is "up" or "unknown" (virtual devices without a
// carrier notion report "unknown"). Anything else ("down",
// "lowerlayerdown", "dormant", "notpresent", "testing") means no carrier:
// neighbours cannot reach an address on it, so it must not hold a VIP.
func HasCarrier(attrs *netlink.LinkAttrs) bool {
	if attrs == nil || attrs.Flags&net.FlagUp == 0 || attrs.RawFlags&unix.IFF_LOWER_UP == 0 {
		return false
	}
	return attrs.OperState == netlink.OperUp || attrs.OperState == netlink.OperUnknown
}

// LinkState describes an interface's link for logs and errors, e.g.
// "oper down, admin up, no carrier".
func LinkState(attrs *netlink.LinkAttrs) string {
	if attrs == nil {
		return "gone"
	}
	admin, carrier := "admin down", "no carrier"
	if attrs.Flags&net.FlagUp != 0 {
		admin = "admin up"
	}
	if attrs.RawFlags&unix.IFF_LOWER_UP != 0 {
		carrier = "carrier"
	}
	return fmt.Sprintf("oper %s, %s, %s", attrs.OperState, admin, carrier)
}

// Carrier reports whether ifname has a carrier (HasCarrier) and describes
// its state. An interface that does not exist has none.
func (m *Manager) Carrier(ifname string) (bool, string, error) {
	link, err := m.nl.LinkByName(ifname)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return false, "gone", nil
		}
		return false, "", fmt.Errorf("interface %s: %w", ifname, err)
	}
	return HasCarrier(link.Attrs()), LinkState(link.Attrs()), nil
}
