module github.com/sluice-proxy/sluice/plugins/src

go 1.25

require github.com/sluice-proxy/sluice/sdk v0.0.0

replace github.com/sluice-proxy/sluice/sdk => ../../../sdk
