# Plots the curves of bench_quality's CSV into benchmarks/quality.png:
# precision at equal recall on qqp_dev, and hit rate / false-hit rate vs the
# threshold for each data set, two scorers of the CSV against each other:
# base (dashed, default use-lite: the raw cosine) and alt (solid, default
# use-lite+verify: the verifier). Usage, from the repository root:
#   build/bench_quality > benchmarks/results/bench_quality.csv
#   gnuplot -e "csv='benchmarks/results/bench_quality.csv'" benchmarks/quality.gp
#   gnuplot -e "base='semcache-embed'; alt='semcache-embed+vote'; out='q.png'" benchmarks/quality.gp
if (!exists("csv")) csv = 'benchmarks/results/bench_quality.csv'
if (!exists("out")) out = 'benchmarks/quality.png'
if (!exists("base")) base = 'use-lite'
if (!exists("alt")) alt = 'use-lite+verify'
set terminal pngcairo size 1400,1000 font ",11"
set output out
set datafile separator ","
sel(row, ds, sc) = sprintf("< awk -F, '$1==\"%s\" && $2==\"%s\" && $3==\"%s\"' %s", row, ds, sc, csv)
set multiplot layout 2,2 title sprintf("semcached hit quality: %s (dashed) vs %s (solid)", base, alt)
set grid
set key bottom left

set title "precision at equal recall (qqp\\_dev, gptcache)"
set xlabel "recall (paraphrases served)"
set ylabel "precision"
set xrange [0:1]
set yrange [0:1]
plot sel("pr","qqp_dev",base) using 10:8 with linespoints dt 2 lc 1 title "qqp ".base, \
     sel("pr","qqp_dev",alt) using 10:8 with linespoints lc 1 title "qqp ".alt, \
     sel("pr","gptcache",base) using 10:8 with linespoints dt 2 lc 2 title "gptcache ".base, \
     sel("pr","gptcache",alt) using 10:8 with linespoints lc 2 title "gptcache ".alt

set title "false-hit rate vs threshold"
set xlabel "threshold"
set ylabel "false-hit rate"
set xrange [0.5:0.99]
set yrange [0:*]
set key top right
plot sel("curve","qqp_dev",base) using 4:9 with lines dt 2 lc 1 title "qqp ".base, \
     sel("curve","qqp_dev",alt) using 4:9 with lines lc 1 title "qqp ".alt, \
     sel("curve","banking77_faq",base) using 4:9 with lines dt 2 lc 3 title "banking77 FAQ ".base, \
     sel("curve","banking77_faq",alt) using 4:9 with lines lc 3 title "banking77 FAQ ".alt, \
     sel("curve","lookalike",base) using 4:9 with lines dt 2 lc 4 title "look-alikes ".base, \
     sel("curve","lookalike",alt) using 4:9 with lines lc 4 title "look-alikes ".alt

set title "hit rate on true paraphrases (recall) vs threshold"
set ylabel "recall"
set yrange [0:1]
plot sel("curve","qqp_dev",base) using 4:10 with lines dt 2 lc 1 title "qqp ".base, \
     sel("curve","qqp_dev",alt) using 4:10 with lines lc 1 title "qqp ".alt, \
     sel("curve","gptcache",base) using 4:10 with lines dt 2 lc 2 title "gptcache ".base, \
     sel("curve","gptcache",alt) using 4:10 with lines lc 2 title "gptcache ".alt, \
     sel("curve","banking77_faq",base) using 4:10 with lines dt 2 lc 3 title "banking77 FAQ ".base, \
     sel("curve","banking77_faq",alt) using 4:10 with lines lc 3 title "banking77 FAQ ".alt, \
     sel("curve","lookalike",base) using 4:10 with lines dt 2 lc 4 title "look-alike set ".base, \
     sel("curve","lookalike",alt) using 4:10 with lines lc 4 title "look-alike set ".alt

set title "precision of served hits vs threshold"
set ylabel "precision"
set yrange [0:1]
set key bottom right
plot sel("curve","qqp_dev",base) using 4:8 with lines dt 2 lc 1 title "qqp ".base, \
     sel("curve","qqp_dev",alt) using 4:8 with lines lc 1 title "qqp ".alt, \
     sel("curve","banking77_faq",base) using 4:8 with lines dt 2 lc 3 title "banking77 FAQ ".base, \
     sel("curve","banking77_faq",alt) using 4:8 with lines lc 3 title "banking77 FAQ ".alt, \
     sel("curve","gptcache",base) using 4:8 with lines dt 2 lc 2 title "gptcache ".base, \
     sel("curve","gptcache",alt) using 4:8 with lines lc 2 title "gptcache ".alt
unset multiplot
