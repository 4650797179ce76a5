module goparse

go 1.22
