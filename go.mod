module github.com/onecalico/calico

go 1.26
