module example.com/sluice-filters/header-go

go 1.24

require github.com/sluice-proxy/sluice/sdk v0.0.0

replace github.com/sluice-proxy/sluice/sdk => ../../../sdk
