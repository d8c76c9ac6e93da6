// Package connectors defines the contract every channel implements: the
// lifecycle of a connector, the normalized inbound and outbound message types,
// the channel policy a connector declares, the classified errors it returns,
// and the registry the host fills with connector factories.
//
// It imports nothing of this module. Each channel lives in a sub-package
// (email, twitter, facebook, livechat, webform) and depends only on this one;
// the hub depends on this package for types only (M1, M2).
//
// How the three remaining channels map onto the contract (see
// docs/connectors.md for the long form):
//
//   - email: Inbound.ExternalID is the Message-ID, ThreadHints are
//     In-Reply-To then References (newest first), TicketRef comes from the
//     subject or a plus-address; Outbound.References carries the thread's
//     Message-IDs; Policy.Threading is ThreadingHeaders.
//   - twitter: ExternalID is the DM event id, ThreadKey the DM conversation
//     id, Sender.ExternalID the user id and Sender.Handle the screen name;
//     webhooks come in through HTTPRoutes (CRC GET and signed POST).
//   - facebook: ExternalID is the message mid, ThreadKey the page-scoped id,
//     delivery and read watermarks come in through Host.UpdateDelivery;
//     Policy.ReplyWindow is 24h.
package connectors
