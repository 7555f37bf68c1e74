module hostile

go 1.24
