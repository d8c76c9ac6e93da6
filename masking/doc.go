// Package masking will own the customer-managed masking tool (K1–K3): built-in
// and customer RE2 patterns compiled into a masker that runs before anything
// is stored, plus pattern storage.
//
// It is a leaf library: it imports nothing of this module. Not built yet: see
// the open issues.
package masking
