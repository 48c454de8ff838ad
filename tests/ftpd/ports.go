package ftpd

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports are picked outside the kernel's ephemeral range, so that no outgoing
// connection of this machine takes them while a server is stopped, and are
// reserved in this process until the server's cleanup, so that a stopped
// server gets its ports back on Start. Other processes (parallel test
// binaries) are only guarded against by checking that the ports are free
// and by picking them at random.
var (
	reservedMu sync.Mutex
	reserved   = map[int]bool{}
)

type reservation struct {
	ports []int
}

func (r *reservation) release() {
	reservedMu.Lock()
	defer reservedMu.Unlock()
	for _, p := range r.ports {
		delete(reserved, p)
	}
	r.ports = nil
}

// reserve picks a free control port and a free range of n contiguous
// passive ports.
func (r *reservation) reserve(n int) (ctl, pasv int, err error) {
	reservedMu.Lock()
	defer reservedMu.Unlock()
	lo, hi := candidateRange(n + 1)
	for range 500 {
		base := lo + rand.IntN(hi-lo-n)
		// base is the control port, base+1..base+n the passive range.
		ok := true
		for p := base; p <= base+n; p++ {
			if reserved[p] || !portFree(p) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for p := base; p <= base+n; p++ {
			reserved[p] = true
			r.ports = append(r.ports, p)
		}
		return base, base + 1, nil
	}
	return 0, 0, fmt.Errorf("no %d free contiguous ports on 127.0.0.1 in [%d, %d)", n+1, lo, hi)
}

// candidateRange returns [lo, hi) outside the ephemeral port range with room
// for n ports.
func candidateRange(n int) (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			b, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				elo, ehi = a, b
			}
		}
	}
	const floor = 10000
	switch {
	case elo-floor >= 1000+n:
		return floor, elo
	case 65536-(ehi+1) >= 100+n:
		return ehi + 1, 65536
	default:
		return 1024, 65536
	}
}

func portFree(p int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
