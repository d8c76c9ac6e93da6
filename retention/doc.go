// Package retention will own the written data policy (T1–T7, X1): the
// versioned policy configuration, the archive of raw and aggregated data as
// CSV objects, on-request exports, purges, and the contract-termination
// workflow. Messenger tickets are exempt from raw archival and become
// archived tickets instead (T3).
//
// It may import reporting and the hub's store interfaces. Not built yet: see
// the open issues.
package retention
