# Plots benchmarks/replay.js's per-window CSV: the served error rate (wrong
# cached answers / cached answers) and the hit rate of each window of 1,000
# requests, one line per config, with reference lines at the 2 % and 5 %
# error budgets. replay.js runs it; by hand, from the repository root:
#   gnuplot -e "csv='benchmarks/results/replay.csv'; out='benchmarks/results/replay.png'; configs='fixed-0.95 budget-0.05'" benchmarks/replay.gp
if (!exists("csv")) csv = 'benchmarks/results/replay.csv'
if (!exists("out")) out = 'benchmarks/results/replay.png'
if (!exists("configs")) configs = 'fixed-0.95'
set terminal pngcairo size 1200,900 font ",11" noenhanced
set output out
set datafile separator ","
set key outside right top
set grid
set xlabel "requests"
set multiplot layout 2,1 title "semcached replay: banking77 + CLINC150 test queries, oracle upstream"
# y: column n of the rows of config c, NaN for the other configs' rows
of(c, n) = (strcol(1) eq c) ? column(n) : NaN
# ten distinct colours; budget configs drawn thicker
colors = "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf"
col(i) = word(colors, (i - 1) % 10 + 1)
lw(i) = (word(configs, i)[1:6] eq "budget") ? 3 : 1.2
N = words(configs)

set title "served error rate per window of 1,000 requests (wrong cached answers / cached answers)"
set ylabel "served error rate"
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0   # headroom: the 0.05 line stays off the border
plot for [i=1:N] csv every ::1 using 2:(of(word(configs, i), 4)) with linespoints pt 7 ps 0.5 \
       lc rgb col(i) lw lw(i) title word(configs, i), \
     0.02 with lines dt 2 lc rgb "gray40" title "0.02", \
     0.05 with lines dt 3 lc rgb "gray20" title "0.05"

set title "hit rate per window of 1,000 requests"
set ylabel "hit rate"
set offsets 0, 0, 0, 0
set yrange [0:1]
plot for [i=1:N] csv every ::1 using 2:(of(word(configs, i), 3)) with linespoints pt 7 ps 0.5 \
       lc rgb col(i) lw lw(i) title word(configs, i)
unset multiplot
