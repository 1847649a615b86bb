// Every text the pages show, in Korean (the default) and English. Problems
// from the API are shown by their stable `code`, never by matching words.
const TEXT = {
  ko: {
    title: 'OX 예측', logout: '로그아웃', tab_today: '오늘', tab_mine: '내 예측', tab_points: '포인트',
    tab_shop: '상점', tab_ranks: '순위', nickname: '닉네임 (2–20자)', save: '저장', week: '이번 주',
    month: '이번 달', all: '전체', anonymous: '(닉네임 없음)', nickname_saved: '닉네임을 저장했습니다',
    board_line: '{points}점 · {wins}승 {losses}패', accuracy: '적중률 {value}%',
    NICKNAME_TAKEN: '이미 사용 중인 닉네임입니다.', auth_heading: '로그인 또는 가입', email: '이메일', password: '비밀번호 (8자 이상)',
    login: '로그인', signup: '가입하기', trading_day: '거래일', cutoff_in: '예측 마감까지',
    cutoff: '마감', balance: '잔액', more: '더 보기', my_redemptions: '내 교환 내역',
    closed: '마감됨', remaining: '오늘 남은 예측 {left}/{limit} · 광고로 추가 {ads}회',
    prev_close: '전일 종가', up_name: 'UP {symbol} 상승 (O)', down_name: 'DOWN {symbol} 하락 (X)',
    your_pick: '내 예측: {choice}', up: '상승 O', down: '하락 X', predicted: '{symbol} {choice} 예측 완료',
    outcome_PENDING: '결과 대기', outcome_WON: '적중', outcome_LOST: '실패', outcome_VOID: '무효',
    closes: '종가 {prev} → {close} ({change}%)', points_won: '+{points}점', redeem: '교환',
    cost: '{cost}점 · 재고 {available}', redeemed: '{name} 교환을 신청했습니다', no_items: '아직 없습니다',
    status_REQUESTED: '처리 중', status_ISSUED: '발급 완료', status_FAILED: '실패', status_CANCELLED: '취소됨',
    reason_settlement_award: '예측 적중', reason_redemption: '리워드 교환', reason_ad_reward: '광고 보상',
    phase_OPEN: '예측 진행 중', phase_CLOSED: '마감', phase_SETTLING: '정산 중', phase_SETTLED: '정산 완료',
    points_unit: '{points}점', signed_out: '로그아웃했습니다', welcome: '환영합니다',
    retry_after: '{seconds}초 후에 다시 시도하세요.', need_login: '로그인이 필요합니다',
    network: '서버에 연결할 수 없습니다. 잠시 후 다시 시도하세요.',
    VALIDATION_FAILED: '입력이 올바르지 않습니다.', INVALID_TOKEN: '다시 로그인해 주세요.',
    INVALID_CREDENTIALS: '이메일 또는 비밀번호가 틀렸습니다.', EMAIL_TAKEN: '이미 가입된 이메일입니다.',
    RATE_LIMITED: '요청이 너무 많습니다.', SESSION_CLOSED: '오늘 예측은 마감되었습니다.',
    PREDICTION_EXISTS: '이미 이 종목을 예측했습니다.', DAILY_LIMIT_REACHED: '오늘 예측 횟수를 모두 썼습니다.',
    SYMBOL_NOT_IN_UNIVERSE: '오늘 예측할 수 없는 종목입니다.', NO_SESSION: '열린 세션이 없습니다.',
    INSUFFICIENT_POINTS: '포인트가 부족합니다.', OUT_OF_STOCK: '재고가 없습니다.',
    REWARD_INACTIVE: '지금은 교환할 수 없는 리워드입니다.', FORBIDDEN: '권한이 없습니다.',
    MFA_REQUIRED: '관리자는 관리 콘솔에서 로그인하세요.', NOT_FOUND: '찾을 수 없습니다.',
    UNAVAILABLE: '서비스를 잠시 사용할 수 없습니다.', INTERNAL: '오류가 발생했습니다. 잠시 후 다시 시도하세요.',
    IDEMPOTENCY_KEY_REUSED: '이미 처리된 요청입니다.', unknown_problem: '요청을 처리하지 못했습니다.',
    google: 'Google로 계속하기', or: '또는', settlement: '정산 결과', settlement_of: '{day} 정산',
    show: '보기', view_settlement: '정산 보기', source: '출처', fetched: '수집', settled_at: '정산 시각',
    market_UP: '상승', market_DOWN: '하락', market_VOID: '무효', void_threshold: '변동이 기준보다 작음',
    void_missing_price: '가격 없음', corrections: '정정 내역', pending_settlement: '아직 정산되지 않았습니다',
    ads: '광고 보고 보상 받기', ad_slot: '예측 1회 추가', ad_points: '{points}점',
    ad_cap_slot: '오늘 남은 횟수 {left}', ad_cap_points: '오늘 남은 횟수 {left}', watch: '보기',
    ad_shown: '광고를 보여 드렸습니다. 광고 네트워크 확인 후 보상이 지급됩니다.',
    my_stats: '내 기록', stat_predictions: '예측', stat_record: '{won}승 {lost}패 {void}무효',
    stat_win_rate: '승률', stat_current_streak: '현재 연승', stat_best_streak: '최고 연승',
    stat_accuracy: '적중률', streak_value: '{n}연승', day_points: '+{points}점',
    reason_adjustment: '운영자 조정', reason_refund: '교환 환불', reason_settlement_correction: '정산 정정',
    status_UNKNOWN: '확인 중',
    AD_LIMIT_REACHED: '오늘 이 광고 보상을 모두 받았습니다.', NOT_SETTLED: '아직 정산되지 않았습니다.',
    OAUTH_FAILED: 'Google 로그인이 완료되지 않았습니다. 다시 시도하세요.',
    EMAIL_NOT_VERIFIED: '이메일 인증이 필요합니다.', MFA_LOCKED: '코드 입력 시도가 너무 많습니다.',
    NOT_A_TRADING_DAY: '거래일이 아닙니다.', MARKET_NOT_CLOSED: '아직 뉴욕 장이 끝나지 않았습니다.',
    PRICES_MISSING: '종가가 모두 모이지 않았습니다.', INVALID_TRANSITION: '지금 상태에서는 할 수 없는 작업입니다.',
    UNKNOWN_SETTING: '없는 설정입니다.', SETTING_READ_ONLY: '여기서 바꿀 수 없는 설정입니다.',
    SETTING_NOT_A_DURATION: '서버 설정에 문제가 있습니다. 잠시 후 다시 시도해 주세요.',
    SETTING_MISSING: '서버 설정에 문제가 있습니다. 잠시 후 다시 시도해 주세요.',
    REPLICA_FAILED: '읽기 전용 복제본에 문제가 있습니다.', REPLICA_EXISTS: '복제본이 이미 있습니다.',
    JOB_LEASE_LOST: '다른 작업자가 이 작업을 맡았습니다.',
    UNKNOWN_SYMBOL: '알 수 없는 종목입니다.', REDEMPTION_FINAL: '이미 끝난 교환입니다.',
    METHOD_NOT_ALLOWED: '허용되지 않는 요청입니다.', DATABASE_UNAVAILABLE: '서비스를 잠시 사용할 수 없습니다.',
    ENVIRONMENT_MISMATCH: '서비스를 잠시 사용할 수 없습니다.', EMAIL_LINK_INVALID: '링크가 만료되었거나 올바르지 않습니다.',
    PRICE_ALREADY_SETTLED: '이미 정산된 가격입니다.', JOB_STATE_CONFLICT: '작업 상태가 맞지 않습니다.',
    CONFIRMATION_REQUIRED: '확인이 필요합니다.', REFUSED_IN_PRODUCTION: '운영 환경에서는 할 수 없습니다.',
    TOTP_KEY_MISMATCH: '서비스를 잠시 사용할 수 없습니다.', NOT_AN_ADMIN: '관리자가 아닌 계정입니다.',
    ALREADY_ADMIN: '이미 관리자입니다.', KEY_ROTATED_RECENTLY: '키를 방금 교체했습니다. 잠시 후 다시 시도하세요.',
    TICK_FAILED: '작업이 실패했습니다.', MIGRATION_FAILED: '작업이 실패했습니다.',
    REDEMPTION_UNKNOWN: '교환 결과를 확인하는 중입니다.', REDEMPTION_NOT_UNKNOWN: '확인 중인 교환이 아닙니다.',
    ALERT_RESOLVED: '이미 해결된 알림입니다.', AD_SSV_BAD_SIGNATURE: '광고 확인에 실패했습니다.',
    AD_SSV_UNKNOWN_KEY: '광고 확인에 실패했습니다.', AD_SSV_MALFORMED: '광고 확인에 실패했습니다.',
    AD_SSV_STALE: '광고 확인 시간이 지났습니다.', AD_SSV_USER_MISMATCH: '광고 확인에 실패했습니다.',
    AD_SSV_UNKNOWN_AD_UNIT: '광고 확인에 실패했습니다.', AD_IMPRESSION_UNKNOWN: '광고 기록을 찾을 수 없습니다.',
    AD_IMPRESSION_REWARDED: '이미 보상을 받은 광고입니다.', BACKUP_FAILED: '작업이 실패했습니다.',
    RESTORE_OUT_OF_RANGE: '복원할 수 없는 시점입니다.', RESTORE_FAILED: '작업이 실패했습니다.',
    BACKUP_NOT_CONFIGURED: '백업이 설정되지 않았습니다.', ARCHIVE_FAILED: '작업이 실패했습니다.',
    PARTITION_NOT_DUE: '보관할 때가 된 기록이 아닙니다.', ARCHIVE_MISMATCH: '보관 파일이 읽은 기록과 다릅니다.',
    COLD_NOT_DUE: '저렴한 저장소로 옮길 때가 된 원장 월이 아닙니다.', COLD_MISMATCH: '사본이 동결된 원장 월의 기록과 다릅니다.',
    DATABASE_NOT_EMPTY: '데이터베이스가 비어 있지 않습니다.', REPLACES_PRODUCTION: '운영 데이터를 덮어쓸 수 없습니다.',
    PAYLOAD_TOO_LARGE: '요청이 너무 큽니다.',
    CONFLICT: '이미 있습니다.', TIMEOUT: '요청 시간이 초과되었습니다. 다시 시도하세요.', RETRY: '잠시 후 다시 시도하세요.',
  },
  en: {
    title: 'OX Predict', logout: 'Log out', tab_today: 'Today', tab_mine: 'My predictions', tab_points: 'Points',
    tab_shop: 'Shop', tab_ranks: 'Ranking', nickname: 'Nickname (2–20 characters)', save: 'Save',
    week: 'This week', month: 'This month', all: 'All time', anonymous: '(no nickname)',
    nickname_saved: 'Nickname saved', board_line: '{points} points · {wins} won {losses} lost',
    accuracy: 'accuracy {value}%', NICKNAME_TAKEN: 'This nickname is taken.', auth_heading: 'Log in or sign up', email: 'Email', password: 'Password (8+ characters)',
    login: 'Log in', signup: 'Sign up', trading_day: 'Trading day', cutoff_in: 'Predictions close in',
    cutoff: 'Cutoff', balance: 'Balance', more: 'More', my_redemptions: 'My redemptions',
    closed: 'closed', remaining: 'Predictions left today {left}/{limit} · ad unlocks {ads}',
    prev_close: 'Previous close', up_name: 'UP {symbol} (O)', down_name: 'DOWN {symbol} (X)',
    your_pick: 'Your pick: {choice}', up: 'UP O', down: 'DOWN X', predicted: '{symbol}: {choice} predicted',
    outcome_PENDING: 'awaiting result', outcome_WON: 'WIN', outcome_LOST: 'LOSS', outcome_VOID: 'VOID',
    closes: 'Close {prev} → {close} ({change}%)', points_won: '+{points} points', redeem: 'Redeem',
    cost: '{cost} points · {available} left', redeemed: '{name}: redemption requested', no_items: 'Nothing yet',
    status_REQUESTED: 'processing', status_ISSUED: 'issued', status_FAILED: 'failed', status_CANCELLED: 'cancelled',
    reason_settlement_award: 'Correct prediction', reason_redemption: 'Reward redemption', reason_ad_reward: 'Ad reward',
    phase_OPEN: 'open', phase_CLOSED: 'closed', phase_SETTLING: 'settling', phase_SETTLED: 'settled',
    points_unit: '{points} points', signed_out: 'You are logged out', welcome: 'Welcome',
    retry_after: 'Try again in {seconds} s.', need_login: 'Please log in',
    network: 'Cannot reach the server. Try again shortly.',
    VALIDATION_FAILED: 'The input is not valid.', INVALID_TOKEN: 'Please log in again.',
    INVALID_CREDENTIALS: 'Wrong email or password.', EMAIL_TAKEN: 'This email is already registered.',
    RATE_LIMITED: 'Too many requests.', SESSION_CLOSED: "Today's predictions are closed.",
    PREDICTION_EXISTS: 'You already predicted this symbol.', DAILY_LIMIT_REACHED: 'No predictions left today.',
    SYMBOL_NOT_IN_UNIVERSE: 'This symbol is not in play today.', NO_SESSION: 'No session is open.',
    INSUFFICIENT_POINTS: 'Not enough points.', OUT_OF_STOCK: 'Out of stock.',
    REWARD_INACTIVE: 'This reward cannot be redeemed now.', FORBIDDEN: 'Not allowed.',
    MFA_REQUIRED: 'Admins sign in on the admin console.', NOT_FOUND: 'Not found.',
    UNAVAILABLE: 'The service is unavailable for a moment.', INTERNAL: 'Something went wrong. Try again shortly.',
    IDEMPOTENCY_KEY_REUSED: 'This request was already handled.', unknown_problem: 'The request failed.',
    google: 'Continue with Google', or: 'or', settlement: 'Settlement', settlement_of: 'Settlement of {day}',
    show: 'Show', view_settlement: 'Settlement', source: 'source', fetched: 'fetched', settled_at: 'settled',
    market_UP: 'UP', market_DOWN: 'DOWN', market_VOID: 'VOID', void_threshold: 'change below the threshold',
    void_missing_price: 'price missing', corrections: 'Corrections', pending_settlement: 'Not settled yet',
    ads: 'Watch an ad for a reward', ad_slot: '+1 prediction', ad_points: '{points} points',
    ad_cap_slot: '{left} left today', ad_cap_points: '{left} left today', watch: 'Watch',
    ad_shown: 'Ad shown. The reward comes once the ad network confirms it.',
    my_stats: 'My record', stat_predictions: 'Predictions', stat_record: '{won} won {lost} lost {void} void',
    stat_win_rate: 'Win rate', stat_current_streak: 'Current streak', stat_best_streak: 'Best streak',
    stat_accuracy: 'Accuracy', streak_value: '{n} in a row', day_points: '+{points} points',
    reason_adjustment: 'Operator adjustment', reason_refund: 'Redemption refund',
    reason_settlement_correction: 'Settlement correction', status_UNKNOWN: 'checking',
    AD_LIMIT_REACHED: 'You have had all rewards of this kind today.', NOT_SETTLED: 'Not settled yet.',
    OAUTH_FAILED: 'Google sign-in did not complete. Try again.',
    EMAIL_NOT_VERIFIED: 'Please verify your email first.', MFA_LOCKED: 'Too many code attempts.',
    NOT_A_TRADING_DAY: 'Not a trading day.', MARKET_NOT_CLOSED: 'New York has not closed yet.',
    PRICES_MISSING: 'Some closes are still missing.', INVALID_TRANSITION: 'Not possible in the current phase.',
    UNKNOWN_SETTING: 'No such setting.', SETTING_READ_ONLY: 'This setting cannot be changed here.',
    SETTING_NOT_A_DURATION: 'The server is misconfigured. Please try again later.',
    SETTING_MISSING: 'The server is misconfigured. Please try again later.',
    REPLICA_FAILED: 'The read replica failed.', REPLICA_EXISTS: 'The replica exists already.',
    JOB_LEASE_LOST: 'Another worker took this job over.',
    UNKNOWN_SYMBOL: 'Unknown symbol.', REDEMPTION_FINAL: 'This redemption is already final.',
    METHOD_NOT_ALLOWED: 'This request is not allowed.', DATABASE_UNAVAILABLE: 'The service is unavailable for a moment.',
    ENVIRONMENT_MISMATCH: 'The service is unavailable for a moment.', EMAIL_LINK_INVALID: 'The link is invalid or expired.',
    PRICE_ALREADY_SETTLED: 'This price is already settled.', JOB_STATE_CONFLICT: 'The job is not in a state for this.',
    CONFIRMATION_REQUIRED: 'Confirmation required.', REFUSED_IN_PRODUCTION: 'Refused in production.',
    TOTP_KEY_MISMATCH: 'The service is unavailable for a moment.', NOT_AN_ADMIN: 'This account is not an admin.',
    ALREADY_ADMIN: 'Already an admin.', KEY_ROTATED_RECENTLY: 'The key was just rotated. Try again later.',
    TICK_FAILED: 'The job failed.', MIGRATION_FAILED: 'The job failed.',
    REDEMPTION_UNKNOWN: 'The redemption is being checked.', REDEMPTION_NOT_UNKNOWN: 'This redemption is not being checked.',
    ALERT_RESOLVED: 'This alert is already resolved.', AD_SSV_BAD_SIGNATURE: 'The ad could not be verified.',
    AD_SSV_UNKNOWN_KEY: 'The ad could not be verified.', AD_SSV_MALFORMED: 'The ad could not be verified.',
    AD_SSV_STALE: 'The ad verification came too late.', AD_SSV_USER_MISMATCH: 'The ad could not be verified.',
    AD_SSV_UNKNOWN_AD_UNIT: 'The ad could not be verified.', AD_IMPRESSION_UNKNOWN: 'No record of this ad view.',
    AD_IMPRESSION_REWARDED: 'This ad view was already rewarded.', BACKUP_FAILED: 'The job failed.',
    RESTORE_OUT_OF_RANGE: 'No backup covers that time.', RESTORE_FAILED: 'The job failed.',
    BACKUP_NOT_CONFIGURED: 'Backups are not configured.', ARCHIVE_FAILED: 'The job failed.',
    PARTITION_NOT_DUE: 'These records are not due for the archive.', ARCHIVE_MISMATCH: 'The archive file does not match the records read.',
    COLD_NOT_DUE: 'This ledger month is not due for cold storage.', COLD_MISMATCH: 'The copy does not hold the frozen month\'s records.',
    DATABASE_NOT_EMPTY: 'The database is not empty.', REPLACES_PRODUCTION: 'This would replace production data.',
    PAYLOAD_TOO_LARGE: 'The request is too large.',
    CONFLICT: 'It already exists.', TIMEOUT: 'The request took too long. Try again.', RETRY: 'Please try again.',
  },
};

const STORED = 'oxp.lang';

function preferred() {
  const saved = localStorage.getItem(STORED);
  if (saved === 'ko' || saved === 'en') return saved;
  // Korean unless the browser puts English before Korean.
  for (const tag of navigator.languages || [navigator.language || 'ko']) {
    const base = String(tag).toLowerCase().slice(0, 2);
    if (base === 'ko') return 'ko';
    if (base === 'en') return 'en';
  }
  return 'ko';
}

let current = preferred();

export function lang() {
  return current;
}

export function setLang(value) {
  current = value === 'en' ? 'en' : 'ko';
  localStorage.setItem(STORED, current);
  document.documentElement.lang = current;
}

export function t(key, vars = {}, language = current) {
  const template = TEXT[language][key] ?? TEXT.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}

export function has(key, language = current) {
  return key in TEXT[language];
}

// A problem+json as one sentence for a person: our words for its code, the
// server's detail when we have no words for it, and when to retry a 429
// (Retry-After, in seconds). The admin console asks for English.
export function problemMessage(problem, language = current) {
  const code = problem && problem.code;
  let text = code && has(code, language) ? t(code, {}, language) : t('unknown_problem', {}, language);
  if (code && !has(code, language) && problem.detail) text += ` (${problem.detail})`;
  if (problem && problem.retryAfter) text += ' ' + t('retry_after', { seconds: problem.retryAfter }, language);
  return text;
}
