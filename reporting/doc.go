// Package reporting will own the reporting path (R1–R5): raw events from the
// HTTP API and the Go SDK, stored individually and masked before storage
// (K3), daily KPI aggregates per (instance, day, KPI, user type, source,
// environment) in the instance's time zone, dashboards that read aggregates
// and drill-down views that read raw events.
//
// It may import masking; nothing else of this module. Not built yet: see the
// open issues.
package reporting
