module abi010

go 1.24
