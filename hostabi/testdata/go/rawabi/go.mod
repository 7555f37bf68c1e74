module rawabi

go 1.24
