module paysync/bench/loadgen

go 1.22
