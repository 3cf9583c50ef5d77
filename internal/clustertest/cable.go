package clustertest

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// bridgeOf names the bridge a node interface is plugged into.
func bridgeOf(ifname string) (string, error) {
	switch ifname {
	case "eth0":
		return "lan", nil
	case "eth1":
		return "back", nil
	}
	return "", fmt.Errorf("no bridge for interface %q (eth0 = lan, eth1 = back)", ifname)
}

// switchPort finds the bridge-side end of node's interface: the veth peer
// of ifname (its IFLA_LINK) inside the bridge's namespace.
func (c *Cluster) switchPort(node, ifname string) (bridge, port string) {
	c.t.Helper()
	bridge, err := bridgeOf(ifname)
	if err != nil {
		c.t.Fatalf("clustertest: %v", err)
	}
	index := 0
	err = c.Lab.Do(node, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		index = l.Attrs().ParentIndex
		return nil
	})
	if err != nil || index == 0 {
		c.t.Fatalf("clustertest: veth peer of %s on %s: index %d, %v", ifname, node, index, err)
	}
	ns, err := netns.GetFromName(c.NS(bridge))
	if err != nil {
		c.t.Fatalf("clustertest: namespace of bridge %s: %v", bridge, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		c.t.Fatalf("clustertest: netlink in bridge %s: %v", bridge, err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(index)
	if err != nil {
		c.t.Fatalf("clustertest: port %d of bridge %s: %v", index, bridge, err)
	}
	return bridge, l.Attrs().Name
}

// CutCable pulls (cut) or plugs back the cable of node's interface at the
// switch: the bridge-side end goes down, so the node's interface stays
// administratively up but loses its carrier (NO-CARRIER, oper state
// "lowerlayerdown"), as when a cable or a switch port fails.
func (c *Cluster) CutCable(node, ifname string, cut bool) {
	c.t.Helper()
	bridge, port := c.switchPort(node, ifname)
	c.Lab.SetLink(bridge, port, !cut)
}

// Unplug detaches (on) node's interface from its bridge or attaches it
// again: the port stays up, so the node keeps its carrier, but no frame
// crosses between it and the rest of that network (a switch that stops
// forwarding for one port, a VLAN misconfiguration). Use it to partition
// a node at layer 2 without a carrier change.
func (c *Cluster) Unplug(node, ifname string, on bool) {
	c.t.Helper()
	bridge, port := c.switchPort(node, ifname)
	if on {
		c.Lab.MustExec(bridge, "ip", "link", "set", port, "nomaster")
	} else {
		c.Lab.MustExec(bridge, "ip", "link", "set", port, "master", "br0")
	}
}
