package tree

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoTopic is wrapped by the error of a selection naming a topic the tree
// does not hold: a typo must not pass for an empty backup.
var ErrNoTopic = errors.New("no such topic in the backup")

// noTopicError names the topics missing and those the tree holds.
type noTopicError struct{ msg string }

func (e *noTopicError) Error() string { return e.msg }
func (e *noTopicError) Unwrap() error { return ErrNoTopic }

// Filter selects the partitions of a tree (--topic, --partition). Empty
// fields select everything.
type Filter struct {
	Topics     []string // topic names
	Partitions []int32  // partition numbers, in every selected topic
}

// PartitionName names one partition folder of a tree.
type PartitionName struct {
	Topic     string
	Partition int32
}

// SelectTopics returns the topics of src that topics names (all of them
// when it is empty), sorted, with every topic src holds. A topic src does
// not hold is an error wrapping ErrNoTopic that lists what it holds.
func SelectTopics(ctx context.Context, src Source, topics []string) (selected, all []string, err error) {
	all, err = src.Topics(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(topics) == 0 {
		return all, all, nil
	}
	var missing []string
	for _, t := range topics {
		if !slices.Contains(all, t) && !slices.Contains(missing, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		has := "no topic"
		if len(all) > 0 {
			has = strings.Join(all, ", ")
		}
		return nil, all, &noTopicError{fmt.Sprintf("no topic %s in the backup at %s (it has %s)", strings.Join(missing, ", "), src, has)}
	}
	selected = slices.DeleteFunc(slices.Clone(all), func(t string) bool { return !slices.Contains(topics, t) })
	return selected, all, nil
}

// SelectPartitions lists the partition folders of src that f selects, by
// topic, then partition (see SelectTopics for topics it does not hold).
func SelectPartitions(ctx context.Context, src Source, f Filter) ([]PartitionName, error) {
	topics, _, err := SelectTopics(ctx, src, f.Topics)
	if err != nil {
		return nil, err
	}
	var out []PartitionName
	for _, t := range topics {
		parts, err := src.Partitions(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			if len(f.Partitions) == 0 || slices.Contains(f.Partitions, p) {
				out = append(out, PartitionName{t, p})
			}
		}
	}
	return out, nil
}
