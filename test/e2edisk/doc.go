// Package e2edisk proves the shared-disk resource (issue 7) at agent level:
// real `harules run` agents in network namespaces of one machine share a
// loop device (/dev/loopN over an image on /dev/shm), mount it through the
// disk lease, and fail over, move and refuse double mounts as the policy
// says. Each agent runs in its own mount namespace (`ip netns exec`), so
// the tests read every agent's /proc/PID/mountinfo every 20 ms and fail if
// the volume was ever mounted on two nodes at once.
//
// The tests need root, util-linux (losetup, nsenter) and e2fsprogs; they
// live in the tests only (the package has no other code).
package e2edisk
