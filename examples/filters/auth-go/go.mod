module example.com/sluice-filters/auth-go

go 1.24

require github.com/sluice-proxy/sluice/sdk v0.0.0

replace github.com/sluice-proxy/sluice/sdk => ../../../sdk
