# Final numbers for issue 7 (run on the quiet 2-vCPU VM, nothing else running).
set -x
B=${B:-target/release/ringsfu-bench}
S=${S:-target/release/ringsfu}
for c in 10 100; do for s in 160 1200; do
  r=2000; [ $c = 100 ] && r=500
  $B fanout --consumers $c --size $s --rate $r --duration 5 --ab --compare-floor --json f-c$c-s$s.json
  $B fanout --spawn-server $S --consumers $c --size $s --rate $r --duration 5 --json h-c$c-s$s.json
done; done
$B fanout --consumers 10 --size 1200 --rate 2000 --duration 4 --sweep --sweep-factor 1.4 --json sweep-c10-s1200.json
$B fanout --consumers 10 --size 1200 --rate 2000 --duration 4 --sweep --sweep-factor 1.4 --backend io_uring --json sweep-c10-s1200-uring.json
$B fanout --producers 2 --consumers 10 --size 1200 --rate 2000 --duration 5 --worker-sweep --json workers-p2c10.json
$B webrtc --publishers 1 --subscribers 10 --size 160 --rate 50 --duration 5 --json w-p1s10-audio.json
$B webrtc --publishers 2 --subscribers 100 --size 1200 --rate 100 --duration 5 --json w-p2s100-video.json
$B floor --consumers 100 --size 1200 --rate 500 --duration 5 --floor-sockets shared --json floor-shared-c100.json
$B idle --count 10000 --json idle10k.json
