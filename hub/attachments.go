package hub

import (
	"context"
	"fmt"
	"io"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// AttachmentBytes returns an attachment of the instance with a reader of
// its bytes; the caller closes it. An attachment whose bytes were not kept
// (over the size limit, or a provider-hosted URL) is ErrNotFound, with the
// reason.
func (h *Hub) AttachmentBytes(ctx context.Context, instanceID string, id int64) (*store.Attachment, io.ReadCloser, error) {
	a, err := h.store.Attachment(ctx, instanceID, id)
	if err != nil {
		return nil, nil, err
	}
	if a.BlobKey == "" {
		why := "only its link is kept"
		if r := a.Meta["not_stored"]; r != "" {
			why = "it was not stored: " + r
		}
		return a, nil, fmt.Errorf("attachment %d: %s: %w", id, why, store.ErrNotFound)
	}
	rc, err := h.blobs.Get(ctx, a.BlobKey)
	if err != nil {
		return a, nil, fmt.Errorf("attachment %d: %w", id, err)
	}
	return a, rc, nil
}
