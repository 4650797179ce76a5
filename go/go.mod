module gocoder/go

go 1.22
