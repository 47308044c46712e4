# Failover: a primary and a streaming standby under synchronous replication
# (the nodes are made here, not by SuStub::node: they need WAL for streaming).
#
# 1. A standby in recovery never sends a request, whatever it holds (pending
#    orders, orders leased by the primary's worker): its own stand-in (its
#    api_base_url, appended to the conf the backup copied) sees nothing until
#    it is promoted, no launcher or worker runs on it, and
#    upload_shopping_info(), verify_shopping_info() and upload_shipping_info()
#    called on it fail at once with a read-only or recovery error, sending
#    nothing (no token request either).
# 2. The primary dies in the middle of a backlog of a few thousand orders
#    being uploaded slowly (its stand-in answers after a delay, so requests are
#    in flight) while a writer commits more orders one by one.  Two rounds,
#    each on a fresh pair: an immediate shutdown, then a kill -9 of the
#    postmaster.  After the promotion the new primary's worker starts by
#    itself, takes over the leases the dead worker left (at once and first,
#    not when they end), and uploads every order the primary acknowledged
#    committing; the only orders sent twice are those the dead worker had
#    sent without its answer reaching the standby.
# 3. Every process a round starts (nodes, their children, stand-ins) is
#    stopped before the next one.
#
# Each round reports (diag): orders committed (acknowledged to the writers),
# orders uploaded, duplicates sent (out_trade_no the stand-ins received more
# than once) and the orders in the dead worker's hands, and the time from the
# promotion to the new primary's first upload.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $max_inflight = 32;
my $lease = 20;           # seconds
my $preload = 2000;       # orders committed before the crash, 200 a transaction
my $trickle = 3000;       # orders a writer commits one by one meanwhile
my $delay_ms = 200;       # the old primary's stand-in answers this late

# A process, as "pid:start" (its start time in clock ticks since boot, from
# /proc/PID/stat): a pid the kernel gives again to another process (pids
# wrap at 32768 on a small machine, and a test run makes many) is not taken
# for the one it named.  undef when there is none; a zombie's with "Z" as
# its second value.
sub proc_id
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/stat" or return undef;
	my $stat = <$fh> // '';
	# "pid (comm) state ppid ... starttime ...": starttime is the 22nd field
	$stat =~ /^\d+ \(.*\) (.*)$/s or return undef;
	my @f = split ' ', $1;
	return wantarray ? ("$pid:$f[19]", $f[0]) : "$pid:$f[19]";
}

# is the process named by proc_id() still there?  A zombie counts as gone.
sub alive
{
	my ($id) = @_;
	return 0 unless defined $id;
	my ($now, $state) = proc_id((split /:/, $id)[0]);
	return defined $now && $now eq $id && $state ne 'Z';
}

# polls $query on $node until it returns $want, at most $secs seconds;
# the time it did, or undef
sub poll_time
{
	my ($node, $query, $want, $secs) = @_;
	my $end = time + $secs;
	while (1)
	{
		my $v = $node->safe_psql('postgres', $query);
		return time if $v eq $want;
		return undef if time > $end;
		usleep(50_000);
	}
}

# the out_trade_no of every upload a stand-in received, with its arrival
sub uploads_of
{
	my ($stub) = @_;
	my @r;
	for my $rec (@{ $stub->requests('/user-order/orders') })
	{
		my $b = eval { SuStub->decode($rec->{body}) };
		my $no = ref $b eq 'HASH' ? $b->{order_key}{out_trade_no} : undef;
		push @r, [ $no // '?', $rec->{time} ];
	}
	return @r;
}

# A primary (the library preloaded, the extension created, WAL for
# streaming) with its stand-in, and a hot standby cloned from it, whose
# api_base_url is a stand-in of its own; synchronous replication on.
sub make_pair
{
	my ($r) = @_;
	my $stub_old = SuStub->start(dir => $dir, name => "stub_primary$r");
	my $stub_new = SuStub->start(dir => $dir, name => "stub_standby$r");

	my $primary = PostgreSQL::Test::Cluster->new("primary$r");
	$primary->init(allows_streaming => 1,
		extra => [ '--encoding=UTF8', '--locale=C' ]);
	my $secret = $primary->basedir . '/app_secret';
	append_to_file($secret, "testsecret\n");
	chmod 0600, $secret;
	$primary->append_conf('postgresql.conf', <<"EOC");
shared_preload_libraries = 'shopping_upload'
listen_addresses = ''
shopping_upload.allow_insecure_http = on
shopping_upload.api_base_url = '${\ $stub_old->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret_file = '$secret'
shopping_upload.timeout = '5s'
shopping_upload.lease = '${lease}s'
shopping_upload.max_inflight = $max_inflight
shopping_upload.verify_delay = 0
shopping_upload.retry_base_delay = '100ms'
shopping_upload.retry_max_delay = '1s'
EOC
	$primary->start;
	$primary->safe_psql('postgres', 'CREATE EXTENSION shopping_upload');

	# a valid order with the out_trade_no given
	my $tmpl = SuStub::order_json(out_trade_no => 'TEMPLATE0001');
	$primary->safe_psql('postgres', <<"EOS");
CREATE FUNCTION public.mk(no text) RETURNS jsonb LANGUAGE sql AS \$\$
	SELECT jsonb_set(jsonb_set('$tmpl'::jsonb, '{order_key,out_trade_no}', to_jsonb(no)),
		'{order_list,0,merchant_order_no}', to_jsonb(no || '-1'))
\$\$;
EOS

	$primary->backup('b');
	my $standby = PostgreSQL::Test::Cluster->new("standby$r");
	$standby->init_from_backup($primary, 'b', has_streaming => 1);
	# the conf came from the primary: the standby gets a stand-in of its own
	$standby->append_conf('postgresql.conf',
		"shopping_upload.api_base_url = '${\ $stub_new->url}'\n");
	$standby->start;

	# after the backup: the standby, once promoted, has no standby to wait for
	$primary->safe_psql('postgres',
		"ALTER SYSTEM SET synchronous_standby_names = '*'");
	$primary->reload;
	defined poll_time($primary,
		"SELECT string_agg(sync_state, ',') FROM pg_stat_replication", 'sync', 60)
	  or die "round $r: the standby is not synchronous";
	return ($primary, $standby, $stub_old, $stub_new);
}

sub round
{
	my ($r, $how) = @_;
	my ($primary, $standby, $stub_old, $stub_new) = make_pair($r);
	my $P = sub { $primary->safe_psql('postgres', $_[0]) };
	my $S = sub { $standby->safe_psql('postgres', $_[0]) };

	# --- a backlog, answered slowly
	$stub_old->fault(kind => 'delay', delay_ms => $delay_ms, count => 0);
	for (my $b = 1; $b <= $preload; $b += 200)
	{
		my $e = $b + 199;
		$P->("SELECT count(shopping_upload.import_order(public.mk(format('R${r}P%s', lpad(g::text, 8, '0')))))
			FROM generate_series($b, $e) g");
	}

	# a writer commits orders one by one (each acknowledged only once the
	# standby has it), and is still writing when the primary dies: every
	# order id it printed was acknowledged
	my $script = "$dir/writer$r.sql";
	open my $fh, '>', $script or die $!;
	printf $fh "SELECT shopping_upload.import_order(public.mk('R${r}W%08d')) FROM pg_sleep(0.005);\n", $_
	  for 1 .. $trickle;
	close $fh;
	my ($wout, $werr) = ("$dir/writer$r.out", "$dir/writer$r.err");
	my $writer = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('postgres'), '-f', $script ],
		'<', \undef, '>', $wout, '2>', $werr, IPC::Run::timeout(180));

	# the backlog is under way: some uploaded, more in flight, more to come
	ok(defined poll_time($primary,
			"SELECT (SELECT count(*) >= 300 FROM shopping_upload.order_state WHERE state = 'uploaded')
				AND (SELECT count(*) >= $preload + 200 FROM shopping_upload.orders)", 't', 60),
		"round $r: the primary's worker is uploading the backlog");

	# --- 1. the standby, in recovery, holds the backlog and sends nothing
	ok(defined poll_time($standby,
			"SELECT count(*) FILTER (WHERE state = 'uploading') > 0
				AND count(*) FILTER (WHERE state = 'pending') > 0 FROM shopping_upload.order_state",
			't', 30),
		"round $r: the standby holds pending orders and orders leased by the primary's worker");
	is($S->("SELECT pg_is_in_recovery()"), 't', "round $r: the standby is in recovery");
	is($S->("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'shopping_upload%'"),
		'0', "round $r: no launcher or worker runs on the standby");
	if ($r == 1)
	{
		# Calls by hand on the standby, all three at once (so that a call
		# that hangs costs the backlog only statement_timeout): each must
		# fail at once, as any write on a standby does, and send nothing.
		my $id = $S->("SELECT max(order_id) FROM shopping_upload.order_state WHERE state = 'pending'");
		my @calls = ("upload_shopping_info($id)", "verify_shopping_info($id)",
			"upload_shipping_info($id)");
		my (%err, %h, %took);
		my $t = time;
		for my $call (@calls)
		{
			$err{$call} = '';
			$h{$call} = IPC::Run::start(
				[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $standby->connstr('postgres'),
					'-c', "SET statement_timeout = '5s'",
					'-c', "SELECT * FROM shopping_upload.$call" ],
				'<', \undef, '>', \my $out, '2>', \$err{$call}, IPC::Run::timeout(60));
		}
		for my $call (@calls)
		{
			eval { $h{$call}->finish };
			$took{$call} = time - $t;
		}
		for my $call (@calls)
		{
			my $rc = $h{$call}->result(0);
			isnt($rc, 0, "on the standby, $call fails");
			like($err{$call}, qr/read-only|recovery/i,
				"on the standby, $call fails with a read-only or recovery error")
			  or diag "after ${\ sprintf('%.1f', $took{$call})} s: $err{$call}";
			unlike($err{$call}, qr/statement timeout|conflict with recovery/,
				"on the standby, $call fails at once (not cancelled after waiting)")
			  or diag "after ${\ sprintf('%.1f', $took{$call})} s";
		}
		usleep(500_000);
		is($stub_new->stats->{requests}, 0,
			"the standby's stand-in saw no request (no token request, no upload) after the calls");
	}

	# --- 2. the primary dies
	my $inflight = $P->("SELECT count(*) FROM shopping_upload.order_state WHERE state = 'uploading'");
	my @pids = grep { defined } map { scalar proc_id($_) } split /\n/, $P->("SELECT pid FROM pg_stat_activity");
	my $pm = proc_id($primary->{_pid});
	my $pm_pid = $primary->{_pid};
	my $t_crash = time;
	if ($how eq 'immediate')
	{
		$primary->stop('immediate');
	}
	else
	{
		kill 'KILL', $pm_pid;
		# its postmaster.pid is stale (the postmaster may linger as a zombie,
		# which _update_pid would take for a live one)
		$primary->{_pid} = undef;
	}
	# Its children see the postmaster gone and leave.  pg_ctl's stop returns
	# once postmaster.pid is gone, which the postmaster removes on its way
	# out, a moment before it exits (seen on sid: still running then).
	my $end = time + 60;
	usleep(50_000) while (grep { alive($_) } $pm, @pids) && time < $end;
	my @left = grep { alive($_) } $pm, @pids;
	is("@left", '', "round $r: every process of the old primary is gone ($how)");
	kill 'KILL', map { (split /:/)[0] } @left if @left;
	eval { $writer->finish };
	my @acked = grep { /^\d+$/ } split /\n/, slurp_file($wout);
	my $committed = $preload + scalar(@acked);
	ok(@acked > 0 && @acked < $trickle, "round $r: the writer was writing when the primary died ("
		  . scalar(@acked) . " acknowledged)");

	# the standby replays all it received
	defined poll_time($standby,
		"SELECT pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn()", 't', 60)
	  or die "round $r: the standby does not replay";
	my $states = $S->("SELECT string_agg(state || ' ' || n, ', ' ORDER BY state)
		FROM (SELECT state, count(*) n FROM shopping_upload.order_state GROUP BY state) s");
	my %lease_end = map { split /\|/ } split /\n/, $S->(
		"SELECT o.out_trade_no, extract(epoch FROM s.next_attempt_at)
		FROM shopping_upload.order_state s JOIN shopping_upload.orders o USING (order_id)
		WHERE s.state = 'uploading'");
	# what the standby knows of each order when it is promoted
	my %state_at_promotion = map { split /\|/ } split /\n/, $S->(
		"SELECT o.out_trade_no, coalesce(s.state, 'none')
		FROM shopping_upload.orders o LEFT JOIN shopping_upload.order_state s USING (order_id)");
	is($stub_new->stats->{requests}, 0,
		"round $r: the standby sent no request while in recovery (its stand-in saw nothing)");

	# --- promotion
	my $t_promote = time;
	$standby->promote;
	ok(defined poll_time($standby,
			"SELECT count(*) > 0 FROM pg_stat_activity
				WHERE backend_type = 'shopping_upload worker' AND datname = 'postgres'",
			't', 30),
		"round $r: after the promotion the worker starts by itself");
	my $t_done = poll_time($standby,
		"SELECT count(*) FROM shopping_upload.order_state WHERE state <> 'uploaded'", '0', 90);
	ok(defined $t_done, "round $r: the new primary uploads the whole backlog")
	  or diag $S->("SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) n
		FROM shopping_upload.order_state GROUP BY state) s");
	$t_done //= time;

	# --- what was committed, uploaded and sent
	my $present = $S->("SELECT count(*) FROM shopping_upload.orders");
	my $uploaded = $S->("SELECT count(*) FROM shopping_upload.order_state WHERE state = 'uploaded'");
	my $last_acked = sprintf("R${r}W%08d", scalar @acked);
	my $acked_uploaded = $S->("SELECT count(*) FROM shopping_upload.orders o
		JOIN shopping_upload.order_state s USING (order_id)
		WHERE s.state = 'uploaded' AND (o.out_trade_no LIKE 'R${r}P%'
			OR (o.out_trade_no LIKE 'R${r}W%' AND o.out_trade_no <= '$last_acked'))");
	is($acked_uploaded, $committed,
		"round $r: every order the primary acknowledged committing is uploaded on the new primary");
	is($uploaded, $present, "round $r: every order the new primary has is uploaded");
	# one writer, one order at a time: at most its last commit reached the
	# standby without its acknowledgement reaching the writer
	ok($present - $committed >= 0 && $present - $committed <= 1,
		"round $r: the new primary has the acknowledged orders, and at most the one being committed ($present)");

	my (%sent_old, %sent_new, $t_first);
	my ($after_crash, $last_after) = (0, 0);
	for my $u (uploads_of($stub_old))
	{
		$sent_old{ $u->[0] }++;
		next unless $u->[1] > $t_crash;
		$after_crash++;
		$last_after = $u->[1] - $t_crash if $u->[1] - $t_crash > $last_after;
	}
	my %first_new;
	for my $u (uploads_of($stub_new))
	{
		$sent_new{ $u->[0] }++;
		$t_first = $u->[1] if !defined $t_first || $u->[1] < $t_first;
		$first_new{ $u->[0] } //= $u->[1];
	}
	ok(!defined $t_first || $t_first >= $t_promote,
		"round $r: the standby's stand-in saw its first upload only after the promotion");
	my @nos = split /\n/, $S->("SELECT out_trade_no FROM shopping_upload.orders");
	my @unsent = grep { !$sent_old{$_} && !$sent_new{$_} } @nos;
	is(scalar @unsent, 0, "round $r: each out_trade_no reached a stand-in at least once")
	  or diag "never sent: @unsent[0 .. ($#unsent < 9 ? $#unsent : 9)]";

	# Duplicates: delivery is at-least-once (an upload is an upsert at
	# WeChat).  The orders in the dead worker's hands at the crash, sent but
	# their answers not recorded on the standby (in flight; answered and
	# waiting for their record; recorded by a commit whose WAL never reached
	# the standby; or claimed by an asynchronous commit that never reached it),
	# are still leased or pending on the promoted standby, and its worker
	# sends them again.  Nothing else is sent twice: not an order the standby
	# knew was uploaded, and the new primary sends each order once.
	my @twice = sort grep { ($sent_old{$_} // 0) + ($sent_new{$_} // 0) > 1 } @nos;
	my $dups = scalar @twice;
	my @in_hands = sort grep { $sent_old{$_} && $state_at_promotion{$_} ne 'uploaded' } @nos;
	is("@twice", "@in_hands", "round $r: the duplicates ($dups) are exactly the orders "
		  . "the dead primary had sent without its answer reaching the standby ("
		  . scalar(@in_hands) . ")");
	is(scalar(grep { $_ > 1 } values %sent_new), 0,
		"round $r: the new primary sent each order once");
	is(scalar(grep { $sent_old{$_} > 1 } keys %sent_old), 0,
		"round $r: the old primary sent each order once");
	# How many can be in its hands: max_inflight requests in flight (claimed,
	# sent, unanswered), plus the answers waiting for their record, which in a
	# backlog the worker writes in batches (at 64 answers, or claim_interval
	# after the first; src/worker.c RECORD_BATCH) while it claims more: the
	# room for a claim does not count them.  So max_inflight alone does not
	# bound the duplicates; max_inflight + 64 does.
	my $leased = grep { $state_at_promotion{$_} eq 'uploading' } @in_hands;
	ok($dups <= $max_inflight + 64,
		"round $r: duplicates ($dups) at most max_inflight + a record batch (" . ($max_inflight + 64) . ")");

	# Leases the dead worker left are taken over, not waited on.  First, by
	# order (whatever the clock): the new worker makes them due at once and
	# first (at the time they were queued, before the pending backlog queued
	# after them), so they are among its first uploads; a worker that waited
	# for the leases to end would send them behind the whole pending backlog
	# (due at their queueing, before any lease's end).
	my @order_new = map { $_->[0] } sort { $a->[1] <=> $b->[1] } uploads_of($stub_new);
	my %rank_new;
	for my $i (0 .. $#order_new)
	{
		$rank_new{ $order_new[$i] } //= $i;
	}
	my $first_n = keys(%lease_end) + $max_inflight;
	# the first ten of some leased orders: rank among the new primary's
	# uploads, lease end and first sent again (from the promotion)
	my $late_list = sub {
		my @some = (sort @_)[0 .. ($#_ < 9 ? $#_ : 9)];
		return sprintf("crash -> promotion %.2f s; late or never (rank, lease end, sent again): %s",
			$t_promote - $t_crash,
			join(', ', map { sprintf('%s #%s %.2f %s', $_, $rank_new{$_} // '-',
				$lease_end{$_} - $t_promote,
				defined $first_new{$_} ? sprintf('%.2f', $first_new{$_} - $t_promote) : 'never') } @some));
	};
	my @late = grep { !defined $rank_new{$_} || $rank_new{$_} >= $first_n } keys %lease_end;
	ok(%lease_end && !@late, "round $r: the " . scalar(keys %lease_end)
		  . " orders leased at the crash were among the new primary's first $first_n uploads")
	  or diag $late_list->(@late);
	# and at once: each before its lease would have ended (the crash ->
	# promotion takes well under a second here, a lease 20 s).  Its failure
	# on sid was a worker that sent the first max_inflight of them, asked
	# is_trade_managed (its answers finished in that wait), then slept its
	# longest wait, 60 s (t/002 has that condition alone).
	my @after_lease = grep { !defined $first_new{$_} || $first_new{$_} >= $lease_end{$_} } keys %lease_end;
	ok(%lease_end && !@after_lease, "round $r: the " . scalar(keys %lease_end)
		  . " orders leased at the crash were sent again before their lease ended")
	  or diag $late_list->(@after_lease);
	my $leased_done = 0;
	for (keys %lease_end)
	{
		$leased_done = $first_new{$_} - $t_promote
		  if defined $first_new{$_} && $first_new{$_} - $t_promote > $leased_done;
	}

	diag sprintf("round %d (%s): committed %d, uploaded %d (orders on the new primary: %d), "
		  . "duplicates sent %d (in the dead worker's hands: %d, of which %d leased on the standby, "
		  . "%d pending there); uploading on the primary just before the crash %d (max_inflight %d); "
		  . "uploads the old primary sent after the crash began %d (the last %.3f s after)",
		$r, $how, $committed, $uploaded, $present, $dups, scalar(@in_hands), $leased,
		scalar(grep { $state_at_promotion{$_} eq 'pending' } @in_hands),
		$inflight, $max_inflight, $after_crash, $last_after);
	diag sprintf("round %d (%s): the standby held {%s}; promotion -> first upload %.2f s, "
		  . "-> last leased order sent %.2f s, -> all uploaded %.2f s; crash -> promotion %.2f s; "
		  . "leased orders sent again after their lease ended: %d",
		$r, $how, $states, defined $t_first ? $t_first - $t_promote : -1,
		$leased_done, $t_done - $t_promote, $t_promote - $t_crash, scalar @after_lease);

	# --- 3. everything this round started stops
	my @spids = grep { defined } map { scalar proc_id($_) }
	  ($standby->{_pid}, split /\n/, $S->("SELECT pid FROM pg_stat_activity"));
	$standby->stop;
	$stub_old->stop;
	$stub_new->stop;
	my @running = grep { alive($_) } @spids;
	push @running, map { "stand-in:" . $_->port }
	  grep { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $_->port) }
	  ($stub_old, $stub_new);
	is("@running", '', "round $r: the new primary and both stand-ins are stopped");
}

round(1, 'immediate');
round(2, 'kill -9 of the postmaster');

done_testing();
