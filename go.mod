module github.com/switchboard-hub/switchboard

go 1.26.8
