package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBrokerExpiresMemberKilledWhileJoining checks the test broker removes a
// group member whose client died while the group rebalanced, as Kafka does
// once its session times out: kfake alone keeps it, with its partitions, for
// ever (see expireSilentMembers).
func TestBrokerExpiresMemberKilledWhileJoining(t *testing.T) {
	t.Parallel()
	const topic, group = "expiry", "g-expiry"
	b := startBroker(t, 4, topic)

	// The survivor: a consumer that heartbeats every 2s, so that the dying
	// member's join is in before the survivor hears of the rebalance, and
	// balances eagerly, so that the rebalance gives the dying member its
	// partitions in one round (as when every earlier member died).
	survivor, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(2*time.Second), kgo.Balancers(kgo.RangeBalancer()))
	if err != nil {
		t.Fatal(err)
	}
	defer survivor.Close()
	go func() {
		for !survivor.PollFetches(context.Background()).IsClientClosed() {
		}
	}()
	waitGroup(t, b, group, func(g kadm.DescribedGroup) bool {
		return g.State == "Stable" && len(g.Members) == 1 && assignedCount(g.Members[0]) == 4
	})

	// The dying member: joins (asking for a member ID first, as clients
	// do), and its process is gone before the rebalance completes.
	dying, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 6000, 10000
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "range", meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	resp, err := join.RequestWith(context.Background(), dying)
	if err != nil || kerr.ErrorForCode(resp.ErrorCode) != kerr.MemberIDRequired {
		t.Fatalf("first join: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
	}
	join.MemberID = resp.MemberID
	go func() { _, _ = join.RequestWith(context.Background(), dying) }() // its reply never comes
	waitGroup(t, b, group, func(g kadm.DescribedGroup) bool { return g.State == "PreparingRebalance" })
	dying.Close()
	waitGroup(t, b, group, func(g kadm.DescribedGroup) bool { // the rebalance gave the dead member half
		return g.State == "Stable" && len(g.Members) == 2 && assignedCount(g.Members[0]) == 2
	})

	// The survivor ends with every partition, once the dead member's
	// session (6s) has run out.
	waitGroup(t, b, group, func(g kadm.DescribedGroup) bool {
		return g.State == "Stable" && len(g.Members) == 1 && assignedCount(g.Members[0]) == 4
	})
}

// waitGroup waits until the description of group satisfies ok.
func waitGroup(t *testing.T, b *broker, group string, ok func(kadm.DescribedGroup) bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitFor(t, "group "+group, func() (bool, string) {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false, err.Error()
		}
		g := gs[group]
		return ok(g), fmt.Sprintf("state %s, %s", g.State, groupAssignment(cl, group))
	})
}

// assignedCount is the number of partitions assigned to m.
func assignedCount(m kadm.DescribedGroupMember) int {
	a, ok := m.Assigned.AsConsumer()
	if !ok {
		return 0
	}
	n := 0
	for _, t := range a.Topics {
		n += len(t.Partitions)
	}
	return n
}
