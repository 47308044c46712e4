# WeChat's order shipping management service, what follows an accepted
# upload (t/016 tests the uploads themselves), against the stand-in's
# payments (/__stub/trade/...):
#
#  1. get_trade_order() by hand: WeChat's order object, kept in trade_state
#     (wechat_order_state, in_complaint, wechat_order, checked_at) and shown
#     by order_status, audited as trade_order; a payment WeChat does not
#     know (10060001) and an order that does not exist are errors, nothing
#     kept; the worker's first get_order is min(60 s, reconcile_interval)
#     after an accepted upload;
#  4. the receipt reminder: shippings.received_at set after an accepted
#     express shipping (or with it) -> notify_confirm_receive once by the
#     worker, never again; by hand afterwards 10060030, counted as done; by
#     hand with a received_at for another order; same-city delivery refused
#     here (10060032, nothing sent); nothing without received_at;
#  5. receive_event(): the settlement push at shipping and at settlement,
#     the 48-hour reminder, the access reminder, an event of no known
#     order, and bad input (stored nothing); a settlement push while the
#     worker's get_order is in flight stays settled (its older answer
#     recorded after it does not undo it);
#  6. the appid's calls: is_trade_managed() kept in trade_apps, the worker
#     asking at start under trade_managed = auto, refresh_delivery_companies()
#     and the validator's delivery_id rule, set_msg_jump_path(),
#     report_special_order(); the configured appid's shipments queued only
#     while it is managed;
#  2. the worker's reconciliation (reconcile_interval 2 s): get_order soon
#     after the upload and every interval, a dispute shown without a call by
#     hand, no more calls once WeChat shows the payment complete or refunded;
#  3. a payment WeChat shows awaiting shipment after accepting its shipping:
#     sent again as a first upload, at most twice;
#  7. 48001 on an upload: rejected, not held (the order's /user-order upload
#     goes on), and the worker asks is_trade_managed again at once (a pinned
#     appid is never asked).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use JSON::PP;
use SuStub;

my $t0 = time();
my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir,
	accounts => 'wxtestappid:testsecret,wxsecond:secret2,wxpinned:secret3');

# trade_managed auto: the configured appid is in the service as WeChat says
my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.timeout = '10s'
shopping_upload.lease = '30s'
shopping_upload.verify_delay = '0'
shopping_upload.trade_managed = 'auto'
EOC

my $UPLOAD = '/wxa/sec/order/upload_shipping_info';
my $GET_ORDER = '/wxa/sec/order/get_order';
my $NOTIFY = '/wxa/sec/order/notify_confirm_receive';
my $MANAGED = '/wxa/sec/order/is_trade_managed';
my $SPECIAL = '/wxa/sec/order/opspecialorder';
my $DELIVERY = '/cgi-bin/express/delivery/open_msg/get_delivery_list';
my $MCHID = '1230000109';
my $OPENID = 'oUser1';

sub sql { return $node->safe_psql('postgres', $_[0]); }
# polls $query until it returns $expected, for at most $secs seconds (30)
sub poll
{
	my ($query, $expected, $secs) = @_;
	my $end = time() + ($secs // 30);
	while (1)
	{
		my ($rc, $out) = $node->psql('postgres', $query);
		return (1, $out) if $rc == 0 && $out eq $expected;
		return (0, $out) if time() > $end;
		usleep(100_000);
	}
}
sub wait_for
{
	my ($query, $expected, $name, $secs) = @_;
	my ($ok, $got) = poll($query, $expected, $secs);
	ok($ok, $name) or diag("got: $got");
	return $ok;
}
sub reload
{
	my ($setting, $value) = @_;
	sql(defined $value
		? "ALTER SYSTEM SET $setting = '$value'"
		: "ALTER SYSTEM RESET $setting");
	$node->reload;
}
# the error a statement ends with, with its SQLSTATE ('' if it succeeds)
sub sql_error
{
	my ($q) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$q");
	return $rc == 0 ? '' : $err;
}
sub tstate
{
	my ($id, $cols) = @_;
	return sql("SELECT $cols FROM shopping_upload.trade_state WHERE order_id = $id");
}
# the order's audit rows of a kind: their count, and errcodes in order
sub naudit
{
	my ($id, $kind, $via) = @_;
	my $v = defined $via ? " AND via = '$via'" : '';
	return sql("SELECT count(*) FROM shopping_upload.audit
		WHERE order_id = $id AND kind = '$kind'$v");
}
sub taudit
{
	my ($id, $kind) = @_;
	return sql("SELECT coalesce(string_agg(errcode::text, ',' ORDER BY audit_id), '')
		FROM shopping_upload.audit WHERE order_id = $id AND kind = '" . ($kind // 'trade_shipping') . "'");
}
sub settled
{
	my ($id) = @_;
	return "SELECT state || ' ' || (uploaded_version IS NOT DISTINCT FROM version)
		FROM shopping_upload.trade_state WHERE order_id = $id";
}

# the stand-in's order shipping management service
sub register
{
	my ($no, %p) = @_;
	return $stub->_control('POST', '/__stub/trade/payments',
		{ mchid => $MCHID, out_trade_no => $no, openid => $OPENID, %p });
}
sub set_state
{
	my ($no, %f) = @_;
	return $stub->_control('POST', '/__stub/trade/state',
		{ mchid => $MCHID, out_trade_no => $no, %f });
}
sub set_managed
{
	my ($appid, $on) = @_;
	return $stub->_control('POST', '/__stub/trade/config',
		{ apps => { $appid => { is_trade_managed => $on ? JSON::PP::true : JSON::PP::false } } });
}
sub payment
{
	my ($no) = @_;
	my ($p) = grep { ($_->{out_trade_no} // '') eq $no }
	  @{ $stub->_control('GET', '/__stub/trade/payments') };
	return $p // {};
}
# the stand-in's records of a call ($UPLOAD by default) naming one payment
sub requests_of
{
	my ($no, $path) = @_;
	return [ grep { index($_->{body}, "\"$no\"") >= 0 } @{ $stub->requests($path // $UPLOAD) } ];
}
sub nreq { return scalar @{ requests_of(@_) }; }
# is_trade_managed requests naming an appid
sub managed_asks
{
	my ($appid) = @_;
	return scalar grep {
		my $b = eval { SuStub->decode($_->{body}) };
		ref $b eq 'HASH' && ($b->{appid} // '') eq $appid
	} @{ $stub->requests($MANAGED) };
}

sub new_order
{
	my ($id, $no, %o) = @_;
	my $appid = defined $o{appid} ? "'$o{appid}'" : 'NULL';
	sql("INSERT INTO shopping_upload.orders
		(order_id, appid, order_number_type, mchid, out_trade_no, openid, logistics_type)
		VALUES ($id, $appid, 1, '$MCHID', '$no', '$OPENID', 1)");
}
# one parcel, unified; logistics_type 1 unless %o says, received_at if given
sub ship_unified
{
	my ($id, $tracking, %o) = @_;
	my $company = $o{company} // 'YTO';
	my $logistics = $o{logistics} // 1;
	my $received = $o{received} // 'NULL';
	sql("BEGIN;
		INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type, received_at)
			VALUES ($id, 1, $logistics, $received);
		INSERT INTO shopping_upload.shipments
			(order_id, shipment_no, tracking_no, express_company, item_desc)
			VALUES ($id, 0, '$tracking', '$company', 'Tea*1');
		COMMIT;");
}
# a registered payment, its order and its unified shipping
sub shipped_order
{
	my ($id, $no, %o) = @_;
	register($no);
	new_order($id, $no);
	ship_unified($id, "YT$no", %o);
}
# the push event the stand-in makes, fed to receive_event(): (event, event_id)
sub feed_event
{
	my (%spec) = @_;
	my $ev = $stub->_control('POST', '/__stub/trade/event', \%spec);
	my $j = SuStub->encode($ev);
	return ($ev, sql("SELECT shopping_upload.receive_event(\$ev\$$j\$ev\$::jsonb)"));
}
sub epoch
{
	my ($expr) = @_;
	return "extract(epoch FROM $expr)::bigint";
}

wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'1', 'the worker runs');

# --- 6. (at start) trade_managed auto: the worker asks WeChat for the configured appid
wait_for("SELECT managed || ' ' || (checked_at IS NOT NULL) || ' ' || (pinned IS NULL)
	FROM shopping_upload.trade_apps WHERE appid = 'wxtestappid'", 'true true true',
	'trade_managed auto: the worker asked at start for the configured appid (trade_apps.managed, checked_at)');
cmp_ok(managed_asks('wxtestappid'), '>=', 1, 'the stand-in got its is_trade_managed');
sql("BEGIN;
	INSERT INTO shopping_upload.accounts (appid, secret) VALUES ('wxsecond', 'secret2'), ('wxpinned', 'secret3');
	INSERT INTO shopping_upload.trade_apps (appid, pinned) VALUES ('wxpinned', true);
	COMMIT;");

# --- 1. get_trade_order()
my ($id1, $no1) = (1001, 'TRADE1001');
shipped_order($id1, $no1);
wait_for(settled($id1), 'uploaded true', 'a unified delivery is uploaded');
my $gap = sql("SELECT extract(epoch FROM t.check_due_at - a.created_at)
	FROM shopping_upload.trade_state t, shopping_upload.audit a
	WHERE t.order_id = $id1 AND a.order_id = $id1 AND a.kind = 'trade_shipping' AND a.errcode = 0");
ok($gap > 50 && $gap <= 61,
	"the worker's first get_order is planned min(60 s, reconcile_interval 6 h) after the accepted upload (${gap}s)");
is(naudit($id1, 'trade_order'), '0', 'no get_order yet');
my $got = sql("SELECT shopping_upload.get_trade_order($id1)");
my $order = SuStub->decode($got);
is($order->{order_state}, 2, 'get_trade_order(): order_state 2 (shipped)');
is($order->{shipping}{finish_shipping_count}, 1, 'shipping.finish_shipping_count 1');
is($order->{merchant_trade_no} . ' ' . $order->{merchant_id}, "$no1 $MCHID", "the payment's keys");
is($order->{shipping}{shipping_list}[0]{tracking_no}, "YT$no1", 'the parcel');
is_deeply($order, payment($no1)->{order}, "it is the stand-in's order object");
is(tstate($id1, "wechat_order_state || ' ' || in_complaint || ' ' || (checked_at IS NOT NULL)"),
	'2 false true', 'trade_state: wechat_order_state, in_complaint, checked_at');
is(tstate($id1, "wechat_order = \$j\$$got\$j\$::jsonb"), 't', 'trade_state.wechat_order is the answer');
is(sql("SELECT wechat_order_state || ' ' || in_complaint FROM shopping_upload.order_status
	WHERE order_id = $id1"), 'shipped false', "order_status.wechat_order_state 'shipped'");
is(sql("SELECT string_agg(via || ' ' || errcode || ' ' || http_status, ',') FROM shopping_upload.audit
	WHERE order_id = $id1 AND kind = 'trade_order'"), 'sql 0 200', "one audit row, kind trade_order, by hand");
is(nreq($no1, $GET_ORDER), 1, 'one get_order request');

# a payment the stand-in does not know
my ($id2, $no2) = (1002, 'TRADE1002');
new_order($id2, $no2);
ship_unified($id2, "YT$no2");
wait_for("SELECT state FROM shopping_upload.trade_state WHERE order_id = $id2", 'waiting_for_payment',
	'a payment WeChat does not find: waiting_for_payment');
my $err = sql_error("SELECT shopping_upload.get_trade_order($id2)");
like($err, qr/ERROR:.*get_order of order $id2 failed: errcode 10060001/,
	'get_trade_order() of a payment WeChat does not know: an error naming 10060001');
is(tstate($id2, "coalesce(wechat_order_state::text, '-') || ' ' || coalesce(in_complaint::text, '-')
	|| ' ' || (wechat_order IS NULL) || ' ' || (checked_at IS NULL) || ' ' || (check_due_at IS NULL)"),
	'- - true true true', 'nothing kept in trade_state');
is(taudit($id2, 'trade_order'), '10060001', 'the attempt audited, 10060001');
$err = sql_error("SELECT shopping_upload.get_trade_order(999999)");
like($err, qr/ERROR:\s+P0002: order 999999 does not exist/, 'get_trade_order() of an order that does not exist: an error');
is(naudit(999999, 'trade_order'), '0', 'no audit row for it');
# (its uploads would go on being retried: out of the way of the faults below)
sql("DELETE FROM shopping_upload.orders WHERE order_id = $id2");

# --- 4. the receipt reminder
my ($id41, $no41) = (1041, 'TRADE1041');
my ($id42, $no42) = (1042, 'TRADE1042');
my ($id43, $no43) = (1043, 'TRADE1043');
my ($id44, $no44) = (1044, 'TRADE1044');
shipped_order($id41, $no41);
shipped_order($id42, $no42);
shipped_order($id43, $no43, logistics => 2);
# (signed for a little after now: not before the upload's shipped_time)
shipped_order($id44, $no44, received => "now() + interval '3 seconds'");
wait_for("SELECT string_agg(state || ' ' || (uploaded_version = version), ',' ORDER BY order_id)
	FROM shopping_upload.trade_state WHERE order_id IN ($id41, $id42, $id43, $id44)",
	'uploaded true,uploaded true,uploaded true,uploaded true',
	'four shippings accepted (express, express, same-city, express signed for)');
is(payment($no43)->{order}{shipping}{logistics_type}, 2, 'the stand-in holds the same-city delivery');
is(tstate($id41, "(confirm_due_at IS NULL) || ' ' || (confirm_notified_at IS NULL)"), 'true true',
	'no receipt reminder planned before received_at is set');
# a shipping signed for when it was stored: reminded once accepted
wait_for("SELECT confirm_notified_at IS NOT NULL FROM shopping_upload.trade_state WHERE order_id = $id44",
	't', 'received_at stored with the shipping: the worker reminds once it is accepted');
ok(payment($no44)->{receipt_reminder_sent}, "the stand-in's receipt_reminder_sent");

sql("UPDATE shopping_upload.shippings SET received_at = now() WHERE order_id = $id41");
wait_for("SELECT confirm_notified_at IS NOT NULL FROM shopping_upload.trade_state WHERE order_id = $id41",
	't', 'received_at set after the accepted express shipping: confirm_notified_at set');
my $p = payment($no41);
ok($p->{receipt_reminder_sent}, "the stand-in's receipt_reminder_sent");
ok(abs(($p->{received_time} // 0) - time()) < 60, 'its received_time is received_at (seconds)');
is(nreq($no41, $NOTIFY), 1, 'one notify_confirm_receive request');
is(sql("SELECT string_agg(via || ' ' || errcode, ',') FROM shopping_upload.audit
	WHERE order_id = $id41 AND kind = 'trade_confirm'"), 'worker 0', "audited, kind trade_confirm, by the worker");
is(tstate($id41, "(confirm_due_at IS NULL) || ' ' || confirm_errcode"), 'true 0', 'done: nothing more planned');
is(tstate($id41, 'state'), 'uploaded', 'the shipping stays uploaded (the change was not sent)');
my $notified41 = tstate($id41, 'confirm_notified_at');
# a second change
sql("UPDATE shopping_upload.shippings SET received_at = now() - interval '1 minute' WHERE order_id = $id41");
wait_for(settled($id41), 'uploaded true', 'a second change of received_at: taken (not sent)');
is(tstate($id41, "(confirm_due_at IS NULL) || ' ' || (confirm_notified_at = '$notified41')"), 'true true',
	'no second reminder planned');
is(tstate($id42, "(confirm_due_at IS NULL) || ' ' || (confirm_notified_at IS NULL)"), 'true true',
	'a shipping without received_at: no reminder planned');
sql("UPDATE shopping_upload.shippings SET received_at = now() WHERE order_id = $id43");
wait_for(settled($id43), 'uploaded true', 'received_at of the same-city delivery: taken');
is(tstate($id43, "(confirm_due_at IS NULL) || ' ' || (confirm_notified_at IS NULL)"), 'true true',
	'same-city delivery: no reminder planned');

# by hand afterwards: 10060030, done
is(sql("SELECT errcode || ' ' || http_status || ' ' || (audit_id IS NOT NULL)
	FROM shopping_upload.notify_confirm_receive($id41)"), '10060030 200 true',
	'notify_confirm_receive() by hand after the reminder: 10060030');
is(tstate($id41, "(confirm_notified_at = '$notified41') || ' ' || (confirm_due_at IS NULL) || ' ' || confirm_errcode"),
	'true true 10060030', 'counted as done: confirm_notified_at kept, nothing planned');
is(taudit($id41, 'trade_confirm'), '0,10060030', 'audited');
# by hand, for an order whose shipping has no received_at and none given: nothing sent
like(sql_error("SELECT * FROM shopping_upload.notify_confirm_receive($id42)"),
	qr/ERROR:.*notify_confirm_receive\($id42\) sent nothing: shippings\.received_at is not set/,
	'notify_confirm_receive() by hand without any received_at: an error, nothing sent');
is(nreq($no42, $NOTIFY) . ' ' . tstate($id42, 'confirm_notified_at IS NULL'), '0 t', 'no request, not done');
# by hand, with received_at given, for an order whose shipping has none
my $before = time();
is(sql("SELECT errcode || ' ' || http_status FROM shopping_upload.notify_confirm_receive($id42, now())"),
	'0 200', 'notify_confirm_receive(order_id, received_at) by hand: accepted');
$p = payment($no42);
ok($p->{receipt_reminder_sent}, "the stand-in's receipt_reminder_sent");
ok(($p->{received_time} // 0) >= int($before) - 2 && $p->{received_time} <= time() + 2,
	'with the received_at given');
is(tstate($id42, "(confirm_notified_at IS NOT NULL) || ' ' || (confirm_due_at IS NULL)"), 'true true',
	'confirm_notified_at set');
is(sql("SELECT via || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $id42 AND kind = 'trade_confirm'"),
	'sql 0', 'audited as by hand');
# same-city: refused here
is(sql("SELECT errcode || ' ' || coalesce(http_status::text, '-') || ' ' || errmsg
	FROM shopping_upload.notify_confirm_receive($id43)"),
	'10060032 - the receipt reminder is for express delivery only (logistics_type 1, not 2): refused here, not sent',
	'same-city delivery (logistics_type 2): refused here, 10060032');
is(sql("SELECT sent || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $id43 AND kind = 'trade_confirm'"),
	'false 10060032', 'audited unsent');
is(nreq($no43, $NOTIFY), 0, 'no request');
ok(!payment($no43)->{receipt_reminder_sent}, 'the stand-in sent no reminder');
is(tstate($id43, 'confirm_notified_at IS NULL'), 't', 'not counted as done');

# --- 5. receive_event()
my ($id51, $no51) = (1051, 'TRADE1051');
shipped_order($id51, $no51);
wait_for(settled($id51), 'uploaded true', 'a shipping accepted');
is(tstate($id51, "(check_due_at > now() + interval '30 seconds') || ' ' || (wechat_order_state IS NULL)"),
	'true true', 'its get_order planned a minute later, not made yet');
my $nev = sql('SELECT count(*) FROM shopping_upload.events');
my ($ev, $evid) = feed_event(event => 'trade_manage_order_settlement', stage => 'shipping',
	mchid => $MCHID, out_trade_no => $no51);
ok(defined $ev->{estimated_settlement_time} && !defined $ev->{settlement_time},
	'the stand-in made the settlement push of the shipping stage');
is(tstate($id51, epoch('estimated_settlement_at') . " || ' ' || wechat_order_state || ' ' || (settled_at IS NULL)"),
	"$ev->{estimated_settlement_time} 2 true",
	'settlement push, shipping stage: estimated_settlement_at, wechat_order_state 2');
is(sql("SELECT event || ' ' || order_id || ' ' || applied FROM shopping_upload.events WHERE event_id = $evid"),
	"trade_manage_order_settlement $id51 shipped: estimated_settlement_at set", 'stored in events with its order');
is(sql("SELECT payload = \$ev\$" . SuStub->encode($ev) . "\$ev\$::jsonb FROM shopping_upload.events
	WHERE event_id = $evid"), 't', 'its payload as received');
($ev, $evid) = feed_event(event => 'trade_manage_remind_shipping', mchid => $MCHID,
	out_trade_no => $no51, msg => 'ship it');
is(tstate($id51, 'shipping_reminded_at IS NOT NULL'), 't', 'the 48-hour reminder: shipping_reminded_at');
is(sql("SELECT event || ' ' || order_id FROM shopping_upload.events WHERE event_id = $evid"),
	"trade_manage_remind_shipping $id51", 'stored with its order');
($ev, $evid) = feed_event(event => 'trade_manage_order_settlement', stage => 'settlement',
	mchid => $MCHID, out_trade_no => $no51);
ok(defined $ev->{settlement_time}, 'the stand-in made the settlement push of the settlement stage');
is(tstate($id51, epoch('settled_at') . " || ' ' || (check_due_at IS NULL) || ' ' || wechat_order_state"),
	"$ev->{settlement_time} true 4", 'settlement push, settled: settled_at, check_due_at NULL, wechat_order_state 4');
is(sql("SELECT wechat_order_state FROM shopping_upload.order_status WHERE order_id = $id51"), 'complete',
	"order_status shows it complete");
is(sql("SELECT order_id || ' ' || applied FROM shopping_upload.events WHERE event_id = $evid"),
	"$id51 settled_at set", 'stored with its order');
my $row51 = tstate($id51, 'updated_at');
($ev, $evid) = feed_event(event => 'trade_manage_remind_access_api', appid => 'wxtestappid', msg => 'use the API');
is(sql("SELECT event || ' ' || coalesce(order_id::text, 'NULL') || ' ' || applied
	FROM shopping_upload.events WHERE event_id = $evid"),
	'trade_manage_remind_access_api NULL stored (no payment state to change)',
	'the access reminder: stored, nothing changed');
is(tstate($id51, "updated_at = '$row51'"), 't', 'no trade_state touched');
register('TRADE1059');
($ev, $evid) = feed_event(event => 'trade_manage_remind_shipping', mchid => $MCHID,
	out_trade_no => 'TRADE1059', msg => 'ship it');
like(sql("SELECT coalesce(order_id::text, 'NULL') || ' ' || applied FROM shopping_upload.events
	WHERE event_id = $evid"), qr/^NULL no order has this payment/, 'an event of no known order: stored, order_id NULL');
is(sql('SELECT count(*) FROM shopping_upload.events'), $nev + 5, 'five events stored');
like(sql_error(q{SELECT shopping_upload.receive_event('[1, 2]')}),
	qr/ERROR:\s+22023: a push event is a JSON object, not array/, 'an array: an error');
like(sql_error(q{SELECT shopping_upload.receive_event('{"MsgType": "event", "transaction_id": "42"}')}),
	qr/ERROR:\s+22023: the push event has no Event/, 'no Event: an error');
like(sql_error(q{SELECT shopping_upload.receive_event(jsonb_build_object('Event', 'trade_manage_remind_access_api',
	'msg', repeat('x', 70000)))}),
	qr/ERROR:\s+54000: the push event is \d+ bytes long; at most 65536 are taken/, 'over 64 kB: an error');
is(sql('SELECT count(*) FROM shopping_upload.events'), $nev + 5, 'none of them stored');

# --- 6. the appid's calls
set_managed('wxsecond', 0);
is(sql("SELECT shopping_upload.is_trade_managed('wxsecond')"), 'f', 'is_trade_managed(): false as the stand-in says');
is(sql("SELECT managed || ' ' || (checked_at IS NOT NULL) FROM shopping_upload.trade_apps WHERE appid = 'wxsecond'"),
	'false true', 'kept in trade_apps.managed, checked_at');
my $checked = sql("SELECT checked_at FROM shopping_upload.trade_apps WHERE appid = 'wxsecond'");
set_managed('wxsecond', 1);
is(sql("SELECT shopping_upload.is_trade_managed('wxsecond')"), 't', 'true once it says so');
is(sql("SELECT managed || ' ' || (checked_at > '$checked') FROM shopping_upload.trade_apps WHERE appid = 'wxsecond'"),
	'true true', 'kept, checked_at moved');
is(sql('SELECT shopping_upload.is_trade_managed()'), 't', 'is_trade_managed() of the configured appid');

# delivery companies
sql('DELETE FROM shopping_upload.delivery_companies');
my $nope = "jsonb_set(shopping_upload.build_trade_shipping_payload($id1), '{shipping_list,0,express_company}', '\"NOPE\"')";
is(sql("SELECT count(*) FROM shopping_upload.validate_trade_shipping_payload($nope)"), '0',
	'delivery_companies empty: any express_company passes');
my $n = sql('SELECT shopping_upload.refresh_delivery_companies()');
my $answer = $stub->requests($DELIVERY)->[-1]{answer}{json};
is($n, scalar @{ $answer->{delivery_list} }, "refresh_delivery_companies() answers the stand-in's count ($n)");
is($n, $answer->{count}, '(its count)');
is(sql('SELECT count(*) FROM shopping_upload.delivery_companies'), $n, 'delivery_companies holds them');
is(sql("SELECT string_agg(delivery_id, ',' ORDER BY delivery_id) FROM shopping_upload.delivery_companies"),
	join(',', sort map { $_->{delivery_id} } @{ $answer->{delivery_list} }), 'its delivery_ids');
is(sql("SELECT string_agg(errcode || ' ' || field, ',') FROM shopping_upload.validate_trade_shipping_payload($nope)"),
	'-3 shipping_list[0].express_company',
	'then an express_company not in it is refused (our own code -3, SU_ERR_UNKNOWN_DELIVERY_ID)');
is(sql("SELECT count(*) FROM shopping_upload.validate_trade_shipping_payload(
	shopping_upload.build_trade_shipping_payload($id1))"), '0', 'one in it passes');
my ($id61, $no61) = (1061, 'TRADE1061');
shipped_order($id61, $no61, company => 'NOPE');
wait_for("SELECT state || ' ' || last_errcode FROM shopping_upload.trade_state WHERE order_id = $id61",
	'rejected -3', 'the worker refuses a shipment of an unknown express_company (-3)');
is(nreq($no61), 0, 'not sent');

# set_msg_jump_path
is(sql_error("SELECT shopping_upload.set_msg_jump_path('pages/x')"), '', 'set_msg_jump_path()');
is($stub->_control('GET', '/__stub/trade/config')->{apps}{wxtestappid}{msg_jump_path}, 'pages/x',
	'the stand-in keeps the path');

# report_special_order
my ($id62, $no62, $id63, $no63) = (1062, 'TRADE1062', 1063, 'TRADE1063');
register($no62);
register($no63);
new_order($id62, $no62);
new_order($id63, $no63);
my $ship_by = int(time()) + 20 * 86400;
is(sql_error("SELECT shopping_upload.report_special_order($id62, 'presale', now() + interval '20 days')"), '',
	'report_special_order(presale, 20 days on)');
my $special = payment($no62)->{special};
ok($special && $special->{type} == 1 && abs($special->{delay_to} - $ship_by) < 60,
	'the stand-in has it: type 1, delay_to') or diag(explain $special);
is(sql_error("SELECT shopping_upload.report_special_order($id63, 'test')"), '', 'report_special_order(test)');
$special = payment($no63)->{special};
ok($special && $special->{type} == 2, 'the stand-in has it: type 2') or diag(explain $special);
like(sql_error("SELECT shopping_upload.report_special_order($id62, 'later')"),
	qr/ERROR:\s+22023: kind must be 'presale' or 'test'/, 'another kind: refused');
like(sql_error("SELECT shopping_upload.report_special_order($id62, 'presale')"),
	qr/ERROR:\s+22004: a pre-sale order needs ship_by/, 'presale without ship_by: refused');
is(scalar @{ $stub->requests($SPECIAL) }, 2, 'neither was sent');
# get_trade_order() of an order never queued for the service: WeChat's answer, nothing kept
$got = sql("SELECT shopping_upload.get_trade_order($id62)");
$order = SuStub->decode($got || '{}');
is(($order->{order_state} // '-') . ' ' . ($order->{merchant_trade_no} // '-'), "1 $no62",
	'get_trade_order() of an unshipped order, never queued for the service: order_state 1');
is(sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = $id62"), '0', 'no trade_state row made');
is(sql("SELECT via || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $id62 AND kind = 'trade_order'"),
	'sql 0', 'audited');

# --- 2. and 3. the worker's get_order, every reconcile_interval (2 s)
reload('shopping_upload.reconcile_interval', '2s');
wait_for("SELECT setting FROM pg_settings WHERE name = 'shopping_upload.reconcile_interval'", '2',
	'reconcile_interval is 2 s');
usleep(500_000);
my ($id21, $no21, $id22, $no22, $id31, $no31) = (1021, 'TRADE1021', 1022, 'TRADE1022', 1031, 'TRADE1031');
shipped_order($_->[0], $_->[1]) for [ $id21, $no21 ], [ $id22, $no22 ], [ $id31, $no31 ];
# (5.) and one of wxsecond whose first get_order the stand-in holds 4 s
my ($id52, $no52) = (1052, 'TRADE1052');
$stub->fault(kind => 'delay', delay_ms => 4000, path => $GET_ORDER, appid => 'wxsecond', count => 1);
register($no52);
new_order($id52, $no52, appid => 'wxsecond');
ship_unified($id52, "YT$no52");
# 5. the settlement push while the worker's get_order is in flight: settled stays settled
wait_for("SELECT check_due_at > now() + interval '20 seconds' FROM shopping_upload.trade_state WHERE order_id = $id52",
	't', 'a get_order in flight (leased), held at the stand-in', 15);
($ev, $evid) = feed_event(event => 'trade_manage_order_settlement', stage => 'settlement',
	mchid => $MCHID, out_trade_no => $no52);
is(tstate($id52, "(settled_at IS NOT NULL) || ' ' || (check_due_at IS NULL) || ' ' || wechat_order_state"),
	'true true 4', 'the settlement push meanwhile: settled');
wait_for("SELECT string_agg(state || ' ' || (uploaded_version = version), ',' ORDER BY order_id)
	FROM shopping_upload.trade_state WHERE order_id IN ($id21, $id22, $id31)",
	'uploaded true,uploaded true,uploaded true', 'three shippings accepted');
wait_for("SELECT count(*) >= 3 FROM shopping_upload.audit WHERE order_id = $id21 AND kind = 'trade_order'",
	't', 'the worker calls get_order again and again', 20);
my @at = split /\n/, sql("SELECT extract(epoch FROM created_at) FROM shopping_upload.audit
	WHERE order_id = $id21 AND kind IN ('trade_shipping', 'trade_order') ORDER BY audit_id");
my $first = $at[1] - $at[0];
ok($first >= 1.5 && $first < 12, sprintf('the first get_order %.1f s after the accepted upload', $first));
my @gaps = map { $at[$_] - $at[ $_ - 1 ] } 2 .. $#at;
my ($min) = sort { $a <=> $b } @gaps;
cmp_ok($min, '>=', 1.5, sprintf('then every interval (gaps %s s)', join(' ', map { sprintf '%.1f', $_ } @gaps)));
is(sql("SELECT string_agg(DISTINCT via || ' ' || errcode, ',') FROM shopping_upload.audit
	WHERE order_id = $id21 AND kind = 'trade_order'"), 'worker 0', 'made by the worker, answered 0');
is(tstate($id21, "wechat_order_state || ' ' || in_complaint || ' ' || (checked_at IS NOT NULL)"),
	'2 false true', "WeChat's view kept");
# a dispute
set_state($no21, in_complaint => JSON::PP::true);
wait_for("SELECT in_complaint FROM shopping_upload.order_status WHERE order_id = $id21", 't',
	'a dispute at the stand-in shows in order_status.in_complaint', 15);
is(naudit($id21, 'trade_order', 'sql'), '0', 'without a call by hand');
is(tstate($id21, "wechat_order -> 'in_complaint'"), 'true', 'wechat_order is the latest answer');

# 5. (continued)
wait_for("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id52 AND kind = 'trade_order'", '1',
	'the get_order answered before the settlement is recorded after it', 15)
  or diag(sql("SELECT audit_id, kind, created_at, via, errcode, http_status, duration_ms FROM shopping_upload.audit
	WHERE order_id = $id52 ORDER BY audit_id"));
is(tstate($id52, "(settled_at IS NOT NULL) || ' ' || coalesce(check_due_at::text, 'NULL') || ' ' || wechat_order_state"),
	'true NULL 4', 'still settled: no next get_order, wechat_order_state 4 (not the older answer\'s 2)');

# 3. awaiting shipment after the accepted upload, first by a new payment
wait_for("SELECT wechat_order_state FROM shopping_upload.trade_state WHERE order_id = $id31", '2',
	'the worker saw the payment shipped');
# (the upload sent again is held 4 s at the stand-in, to read the row meanwhile)
$stub->fault(kind => 'delay', delay_ms => 4000, path => $UPLOAD, count => 1);
register($no31);
is(payment($no31)->{order}{order_state}, 1, 'the stand-in shows the payment awaiting shipment (registered anew)');
wait_for("SELECT unshipped_resends || ' ' || coalesce(last_errmsg LIKE 'WeChat showed the payment awaiting shipment%', false)
	FROM shopping_upload.trade_state WHERE order_id = $id31", '1 true',
	'get_order showed order_state 1: sent again, unshipped_resends 1', 15);
like(tstate($id31, 'last_errmsg'), qr/\(get_order order_state 1\) after its shipping was accepted: sent again, as a first upload \(at most 2 times a payment\)/,
	'last_errmsg says so');
wait_for(settled($id31), 'uploaded true', 'the upload sent again is accepted', 15);
$p = payment($no31);
is($p->{uploads_accepted} . ' ' . ($p->{reship_used} ? 'reship' : 'no-reship') . ' ' . $p->{order}{order_state}
	. ' ' . $p->{order}{shipping}{finish_shipping_count}, '1 no-reship 2 1',
	'the stand-in accepted it as a first upload: no re-ship, shipped, finish_shipping_count 1');
is(tstate($id31, "finish_count || ' ' || reship_used || ' ' || unshipped_resends || ' ' || last_errcode"),
	'1 false 1 0', 'trade_state: complete, no re-ship used');
is(taudit($id31), '0,0', 'two accepted uploads audited');
is(nreq($no31), 2, 'two upload requests');
$stub->clear_faults;
# then by WeChat's state alone (its shipping kept): the upload is unchanged there
wait_for("SELECT wechat_order_state FROM shopping_upload.trade_state WHERE order_id = $id31", '2',
	'the worker saw it shipped again', 15);
set_state($no31, order_state => 1);
wait_for("SELECT unshipped_resends || ' ' || state || ' ' || (uploaded_version = version) || ' ' || last_errcode
	FROM shopping_upload.trade_state WHERE order_id = $id31", '2 uploaded true 10060023',
	'order_state 1 again: sent a second time (answered 10060023, unchanged)', 15);
my $checks31 = naudit($id31, 'trade_order');
wait_for("SELECT count(*) > $checks31 FROM shopping_upload.audit WHERE order_id = $id31 AND kind = 'trade_order'",
	't', 'the worker goes on asking', 15);
is(tstate($id31, "unshipped_resends || ' ' || state || ' ' || wechat_order_state"), '2 uploaded 1',
	'WeChat still shows it awaiting shipment: not sent a third time');
is(sql("SELECT wechat_order_state FROM shopping_upload.order_status WHERE order_id = $id31"), 'awaiting_shipment',
	'order_status shows awaiting_shipment');
my $bound31 = sprintf('%d upload and %d get_order requests until the bound was seen',
	nreq($no31), nreq($no31, $GET_ORDER));

# 2. complete (4) and refunded (5) stop the worker's get_order
set_state($no21, order_state => 4);
set_state($no22, order_state => 5);
wait_for("SELECT string_agg((check_due_at IS NULL) || ' ' || wechat_order_state, ',' ORDER BY order_id)
	FROM shopping_upload.trade_state WHERE order_id IN ($id21, $id22)", 'true 4,true 5',
	'complete, refunded at the stand-in: no next get_order', 15);
is(sql("SELECT string_agg(wechat_order_state, ',' ORDER BY order_id) FROM shopping_upload.order_status
	WHERE order_id IN ($id21, $id22)"), 'complete,refunded', 'order_status shows them');

# what must not happen, over two and a half intervals
my %count = (
	c21 => naudit($id21, 'trade_order'), c22 => naudit($id22, 'trade_order'),
	r21 => nreq($no21, $GET_ORDER), r22 => nreq($no22, $GET_ORDER),
	u31 => nreq($no31), c31 => naudit($id31, 'trade_order'),
	n41 => nreq($no41, $NOTIFY), a41 => naudit($id41, 'trade_confirm'));
sleep 5;
is(naudit($id21, 'trade_order') . ' ' . naudit($id22, 'trade_order'), "$count{c21} $count{c22}",
	'no further trade_order audit rows for the complete and the refunded payment');
is(nreq($no21, $GET_ORDER) . ' ' . nreq($no22, $GET_ORDER), "$count{r21} $count{r22}",
	'no further get_order requests');
is(tstate($id31, 'unshipped_resends'), '2', 'unshipped_resends stays 2');
is(nreq($no31), $count{u31}, 'no further upload');
cmp_ok(naudit($id31, 'trade_order'), '>', $count{c31}, '(while get_order goes on)');
is(nreq($no41, $NOTIFY) . ' ' . naudit($id41, 'trade_confirm'), "$count{n41} $count{a41}",
	'the second change of received_at: no second receipt reminder');
is(nreq($no42, $NOTIFY) . ' ' . nreq($no43, $NOTIFY), '1 0', 'nor any by the worker for the others');
diag(sprintf('payment %s (unshipped twice, then bounded): %s; %d and %d by now',
	$no31, $bound31, nreq($no31), nreq($no31, $GET_ORDER)));

# --- 7. 48001 on an upload
set_managed('wxsecond', 0);
my $asked2 = managed_asks('wxsecond');
my $checked2 = sql("SELECT checked_at FROM shopping_upload.trade_apps WHERE appid = 'wxsecond'");
is(sql("SELECT managed FROM shopping_upload.trade_apps WHERE appid = 'wxsecond'"), 't',
	'wxsecond is in the service as last asked');
my $json = SuStub::order_json(out_trade_no => 'SECOND_0071', appid => 'wxsecond');
my $id71 = sql("SELECT shopping_upload.import_order('$json', 'wxsecond')");
ship_unified($id71, 'YT71');
wait_for("SELECT state || ' ' || last_errcode FROM shopping_upload.trade_state WHERE order_id = $id71",
	'rejected 48001', 'the service answers 48001 (the app is not in it): rejected');
is(sql("SELECT sent || ' ' || errcode FROM shopping_upload.audit WHERE order_id = $id71 AND kind = 'trade_shipping'"),
	'true 48001', 'one attempt, sent, audited');
wait_for("SELECT state FROM shopping_upload.order_state WHERE order_id = $id71", 'uploaded',
	"not held: the order's own /user-order upload of the appid goes on");
is(sql("SELECT count(*) FROM shopping_upload.holds WHERE appid = 'wxsecond'"), '0', 'no hold of the appid');
wait_for("SELECT managed || ' ' || (checked_at > '$checked2') FROM shopping_upload.trade_apps WHERE appid = 'wxsecond'",
	'false true', 'the worker asked is_trade_managed again at once: not managed now', 15);
my $late = sql("SELECT extract(epoch FROM t.checked_at - a.created_at) FROM shopping_upload.trade_apps t,
	shopping_upload.audit a WHERE t.appid = 'wxsecond' AND a.order_id = $id71 AND a.kind = 'trade_shipping'");
ok($late >= 0 && $late < 10, "after the 48001 (${late}s)");
cmp_ok(managed_asks('wxsecond'), '>', $asked2, 'the stand-in got the question');
is(managed_asks('wxpinned') . ' ' . sql("SELECT checked_at IS NULL FROM shopping_upload.trade_apps WHERE appid = 'wxpinned'"),
	'0 t', 'a pinned appid is never asked');
is(naudit($id71, 'trade_shipping'), '1', 'the rejected upload is not tried again');

# --- 6. (end) the configured appid's shipments queued only while it is managed
set_managed('wxtestappid', 0);
is(sql('SELECT shopping_upload.is_trade_managed()'), 'f', 'the configured appid out of the service');
my ($id64, $no64, $id65, $no65) = (1064, 'TRADE1064', 1065, 'TRADE1065');
shipped_order($id64, $no64);
is(sql("SELECT count(*) FROM shopping_upload.shipping_state WHERE order_id = $id64") . ' '
	. sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = $id64"), '1 0',
	'its shipment is not queued for the service (shipping_state only)');
set_managed('wxtestappid', 1);
# (a refresh of the worker that asked before the change has committed by then)
usleep(1_000_000);
is(sql('SELECT shopping_upload.is_trade_managed()'), 't', 'back in the service');
shipped_order($id65, $no65);
is(sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = $id65"), '1',
	'its shipment is queued for the service');
wait_for(settled($id65), 'uploaded true', 'and uploaded');

$stub->clear_faults;
diag(sprintf('wall time %.1f s', time() - $t0));
done_testing();
