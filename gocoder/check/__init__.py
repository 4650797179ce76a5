"""The Go side: Go and gocheck found and built (toolchain), the checker client (validate),
`gocoder check` (files), and the sandbox that runs untrusted Go (sandbox, confine)."""
