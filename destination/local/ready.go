package local

import "context"

// Ready always returns nil: a local destination holds nothing back.
func (d *Destination) Ready() error { return nil }

// Close does nothing: files are final as soon as they are renamed.
func (d *Destination) Close(context.Context) error { return nil }
